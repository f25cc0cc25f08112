"""Reading a YAML file a person wrote (a pipeline file): strictly, and within limits.

* The file must be a regular file (a pipe would block the reader forever) of at most
  :data:`MAX_BYTES`, in UTF-8 (a byte-order mark is allowed). Another encoding is an
  error that says so and points at the first byte that is not UTF-8.
* PyYAML's safe loader, with limits on what a document may expand to: nesting depth
  (:data:`MAX_DEPTH`) and the number of values once every alias is expanded
  (:data:`MAX_VALUES`). Aliases share their node while the document is parsed, so a
  "billion laughs" file of a few hundred bytes is small until something walks it; the
  expanded size is computed on the node graph, before anything is built from it. A
  document that refers to itself is refused too.
* A key given twice in one mapping is an error naming both lines (YAML would keep the
  last one without a word).
* Every message quotes at most a few hundred characters of the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from featx.core.console import shorten
from featx.core.errors import ConfigError

#: the largest file read (a pipeline file is a few hundred bytes)
MAX_BYTES = 1 << 20
#: the deepest nesting of lists and mappings, aliases expanded
MAX_DEPTH = 50
#: the most values (scalars, lists, mappings, keys) a document may expand to
MAX_VALUES = 100_000
#: the longest part of a YAML error message quoted
MESSAGE_LIMIT = 300


class _LimitExceeded(Exception):
    """The document expands beyond a limit, or refers to itself."""


def read_utf8(path: str | os.PathLike[str], *, what: str) -> str:
    """The text of a small regular file, decoded as UTF-8 (a byte-order mark is dropped).

    Args:
        path: the file.
        what: what it is, for messages (``pipeline file``).

    Raises:
        ConfigError: missing or unreadable, not a regular file, larger than
            :data:`MAX_BYTES`, or not UTF-8 (the message names the line and column of the
            first byte that is not).
    """
    file_path = Path(path).expanduser()
    try:
        info = os.stat(file_path)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{what} {file_path} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what} {file_path} is not a regular file (a pipe, a socket or a device); give a YAML file")
        if info.st_size > MAX_BYTES:
            raise ConfigError(f"{what} {file_path} is {info.st_size:,} bytes; featx reads {what}s of at most {MAX_BYTES:,} bytes")
        data = file_path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {what} {file_path}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        looks = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ConfigError(
            f"{what} {file_path} is not UTF-8 text{looks}: byte 0x{data[error.start]:02x} at line {line}, column {column}; "
            f"featx reads {what}s as UTF-8: save it as UTF-8 (for example `iconv -f latin1 -t utf-8`)"
        ) from None


def load_yaml_file(path: str | os.PathLike[str], *, what: str = "YAML file") -> Any:
    """Read and parse a YAML file within the limits of this module.

    Returns:
        The document as plain data (None for an empty file).

    Raises:
        ConfigError: the file cannot be read (see :func:`read_utf8`), is not valid YAML,
            has a key twice in one mapping, or expands beyond the limits; the message
            starts with the file's path.
    """
    text = read_utf8(path, what=what)
    return load_yaml(text, source=str(Path(path).expanduser()))


def load_yaml(text: str, *, source: str = "<text>") -> Any:
    """Parse YAML text within the limits of this module (see the module doc).

    Raises:
        ConfigError: as :func:`load_yaml_file`; the message starts with ``source``.
    """
    import yaml

    loader = None
    try:
        loader = _loader_class()(text)  # the reader refuses control characters already here
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except _LimitExceeded as error:
        raise ConfigError(f"{source}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source} is not valid YAML: {shorten(str(error), MESSAGE_LIMIT)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nests deeper than featx reads ({MAX_DEPTH} levels)") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_expansion(root: Any) -> None:
    """Refuse a node graph that expands to more than :data:`MAX_VALUES` values or
    :data:`MAX_DEPTH` levels, or that contains itself.

    Every node is visited once (sizes and heights are remembered), so the check costs what
    the file's own size does, however much its aliases would expand.
    """
    import yaml

    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values it expands to, levels below it)
    active: set[int] = set()

    def visit(node: Any, depth: int) -> tuple[int, int]:
        known = done.get(id(node))
        if known is None:
            if id(node) in active:
                raise _LimitExceeded(f"line {node.start_mark.line + 1}: an alias refers to a value that contains it (a loop)")
            if depth > MAX_DEPTH:
                raise _LimitExceeded(f"line {node.start_mark.line + 1}: nests deeper than {MAX_DEPTH} levels")
            active.add(id(node))
            children: list[Any] = []
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            size, height = 1, 0
            for child in children:
                child_size, child_height = visit(child, depth + 1)
                size, height = size + child_size, max(height, child_height + 1)
                if size > MAX_VALUES:
                    raise _LimitExceeded(
                        f"expands to more than {MAX_VALUES:,} values (aliases repeat what they refer to); a pipeline needs far fewer"
                    )
            active.discard(id(node))
            known = done[id(node)] = (size, height)
        if depth + known[1] > MAX_DEPTH:
            raise _LimitExceeded(f"line {node.start_mark.line + 1}: nests deeper than {MAX_DEPTH} levels once its aliases are expanded")
        return known

    visit(root, 0)


_LOADER: type | None = None


def _loader_class() -> type:
    """PyYAML's safe loader with a nesting limit while composing and duplicate keys refused
    (built on first use: ``featx --help`` does not import yaml)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    merge_tag = "tag:yaml.org,2002:merge"

    class StrictLoader(yaml.SafeLoader):
        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            self._depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    line = self.peek_event().start_mark.line + 1
                    raise _LimitExceeded(f"line {line}: nests deeper than {MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == merge_tag or not isinstance(key_node, yaml.ScalarNode):
                        continue
                    key = self.construct_object(key_node)
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        raise _LimitExceeded(
                            f"duplicate key {shorten(repr(key), 80)} at lines {seen[key]} and {line} (YAML would keep only the last one); "
                            "write it once"
                        )
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    _LOADER = StrictLoader
    return _LOADER
