"""The one validation layer of every config: pydantic models whose errors are featx's own.

A config (:class:`Config`) is a frozen pydantic model: what the Python API builds, what a
pipeline file is parsed into, and what the CLI builds from its options. Its fields carry
their rules as annotated types (``Annotated[int, Strict(), Field(ge=1)]``, a
:func:`check` function), so one declaration checks all three entry points. A mistake is
a :class:`~featx.core.errors.ConfigError` naming the field (``cv``, ``grid.C``) and, for a
pipeline file, the key path before it (``classifiers[0].cv``); the CLI turns the field
into its flag. pydantic's own messages never reach the user: :func:`translate` words
each kind of mistake (a wrong type, a value out of range, an unknown key with the
closest valid ones).

Validators raise :class:`Invalid` (a ``ValueError``, which pydantic collects) holding the
featx error to report, so that its type (``UnknownNameError``) and any location below the
field (``grid`` -> ``grid.C``) survive.
"""

from __future__ import annotations

import contextvars
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError
from pydantic.fields import FieldInfo

from featx.core.console import quote
from featx.core.errors import ConfigError, UnknownNameError
from featx.core.registry import closest_names

C = TypeVar("C", bound="Config")

#: how many configs are being built inside each other in this context (0: none)
_nesting: contextvars.ContextVar[int] = contextvars.ContextVar("featx_config_nesting", default=0)


class Invalid(ValueError):
    """A validator's verdict: the featx error to report for the field being validated.

    Args:
        error: a message, or a :class:`ConfigError` (its type and ``field``, a location
            below the validated field, are kept).
    """

    def __init__(self, error: str | ConfigError) -> None:
        self.error = error if isinstance(error, ConfigError) else ConfigError(error)
        super().__init__(self.error.problem)


def _as_validator(rule: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def validate(value: Any) -> Any:
        try:
            return rule(value)
        except ConfigError as error:
            raise Invalid(error) from None

    validate.__name__ = getattr(rule, "__name__", "check")
    return validate


def check(rule: Callable[[Any], Any]) -> AfterValidator:
    """A field rule for ``Annotated[...]``: ``rule`` (value -> value, raising
    :class:`ConfigError`) runs on the value after its type is checked."""
    return AfterValidator(_as_validator(rule))


def prepare(rule: Callable[[Any], Any]) -> BeforeValidator:
    """A field rule for ``Annotated[...]`` that runs before the type check: ``rule`` turns
    what a user may write (``"0.5,0.5,0.5"``) into the field's type, or raises
    :class:`ConfigError`."""
    return BeforeValidator(_as_validator(rule))


class Config(BaseModel):
    """Base of every featx config: frozen, hashable when its fields are, unknown keys refused,
    and a :class:`ConfigError` (never a pydantic error) for any invalid value."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=(), arbitrary_types_allowed=True)

    def __init__(self, /, **data: Any) -> None:
        # pydantic calls this __init__ for a nested config too: only the outermost one
        # translates, so that the error keeps its whole location (backbones[1].image_size)
        depth = _nesting.set(_nesting.get() + 1)
        try:
            super().__init__(**data)
        except ValidationError as error:
            if _nesting.get() > 1:
                raise
            raise translate(error, type(self)) from None
        finally:
            _nesting.reset(depth)

    @classmethod
    def from_mapping(cls: type[C], data: Any, *, path: str = "") -> C:
        """Build from plain data (a pipeline file's mapping); errors start with ``path``.

        Raises:
            ConfigError: not a mapping, an unknown key, or an invalid value.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping of {', '.join(cls.model_fields)}, got {describe_value(data)}", path=path)
        try:
            return cls(**{str(key): value for key, value in data.items()})
        except ConfigError as error:
            raise error.located(path) from None

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes``, checked again like a new config."""
        return type(self)(**{**self.fields(), **changes})

    def fields(self) -> dict[str, Any]:
        """Every field's value (a shallow dict: nested values as they are)."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def given(self) -> dict[str, Any]:
        """The fields that were given explicitly (not left at their default)."""
        return {name: getattr(self, name) for name in type(self).model_fields if name in self.model_fields_set}

    @classmethod
    def unknown_key_hint(cls, key: str) -> str:
        """Extra advice after "unknown key" for ``key`` (subclasses override)."""
        return ""


# --------------------------------------------------------------------------- messages


def translate(error: ValidationError, model: type[BaseModel]) -> ConfigError:
    """The first mistake of a pydantic ``ValidationError`` as a featx error naming its field."""
    detail = error.errors(include_url=False)[0]
    loc = tuple(detail["loc"])
    location = format_location(loc)
    inner = (detail.get("ctx") or {}).get("error")
    if isinstance(inner, Invalid):
        found = inner.error
        return type(found)(found.problem, field=_join(location, found.field))
    field, owner = _field_at(model, loc)
    kind = UnknownNameError if detail["type"] == "extra_forbidden" else ConfigError
    return kind(_problem(detail, field, owner, loc), field=location)


def format_location(loc: Sequence[Any]) -> str:
    """``("backbones", 1, "image_size")`` -> ``backbones[1].image_size``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _join(location: str, field: str) -> str:
    return ".".join(part for part in (location, field) if part)


def describe_value(value: Any) -> str:
    """``'big' (text)``, ``[1, 2] (a list)``, ``nothing``: a value as a message shows it."""
    if value is None:
        return "nothing"
    kinds = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", tuple: "a list", dict: "a mapping"}
    return f"{quote(value)} ({kinds.get(type(value), type(value).__name__)})"


_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true/false",
    "bool_parsing": "true/false",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "greater than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


def _problem(detail: Mapping[str, Any], field: FieldInfo | None, owner: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    kind, value, ctx = detail["type"], detail.get("input"), detail.get("ctx") or {}
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden" and owner is not None:
        key = str(loc[-1])
        valid = list(owner.model_fields)
        close = closest_names(key, valid)
        hint = owner.unknown_key_hint(key) if issubclass(owner, Config) else ""
        suggestion = f"; did you mean {', '.join(close)}?" if close else ""
        return f"unknown key{suggestion}{hint} (valid: {', '.join(valid)})"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        nested = _model_of(field.annotation) if field is not None else None
        what = f"a mapping of {', '.join(nested.model_fields)}" if nested is not None else "a mapping"
        return f"expected {what}, got {describe_value(value)}"
    if kind == "list_type" and field is not None and any(getattr(m, "min_length", 0) for m in field.metadata):
        return f"expected a non-empty list, got {describe_value(value)}"
    if kind in _EXPECTED:
        nullable = field is not None and _allows_none(field.annotation)
        return f"expected {_EXPECTED[kind]}{' or null' if nullable else ''}, got {describe_value(value)}"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"must be {words} {ctx.get(name)}, got {quote(value)}"
    if kind == "too_short":
        return f"expected a non-empty list, got {describe_value(value)}"
    if kind == "literal_error":
        return f"{quote(value)} is not one of {ctx.get('expected', '')}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error") or detail["msg"])
    return str(detail["msg"])


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[FieldInfo | None, type[BaseModel] | None]:
    """The field a location points at, and the model that owns it (for messages)."""
    owner: type[BaseModel] | None = model
    field: FieldInfo | None = None
    for index, part in enumerate(loc):
        if isinstance(part, int):
            continue
        if owner is None or part not in owner.model_fields:
            return None, owner
        field = owner.model_fields[part]
        if index < len(loc) - 1:
            owner = _model_of(field.annotation)
    return field, owner


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class inside an annotation (``Model``, ``list[Model]``, ``Model | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _allows_none(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(arg is type(None) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _allows_none(typing.get_args(annotation)[0])
    return annotation is None or annotation is type(None)


# --------------------------------------------------------------------------- field types shared by every config

#: a whole number (never true/false or text) of at least 1
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
#: a whole number of at least 0
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
#: a seed numpy and scikit-learn accept: 0 .. 2**32 - 1
Seed = Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)]
#: true or false, nothing else
Flag = Annotated[bool, Strict()]


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise Invalid(f"expected a number, got {describe_value(value)}")
    return value


#: a number: an int, a float, or text that is one (YAML 1.1 reads ``1e-3`` as text); never true/false
Number = Annotated[float, BeforeValidator(_not_a_bool)]


def _path_text(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


#: a file or folder path, kept as text (a ``Path`` is accepted)
PathText = Annotated[str, BeforeValidator(_path_text)]
