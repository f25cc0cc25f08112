"""Public names of a package, imported from their modules on first use (PEP 562).

A package's ``__init__`` lists what is API without paying for importing it: ``import
featx.fitting`` costs nothing until ``featx.fitting.fit`` is used. Type checkers see the
same names through the package's ``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``names`` (name -> module).

    Example, in a package's ``__init__.py``::

        __getattr__, __dir__, __all__ = lazy_exports(__name__, {"fit": "featx.fitting.protocol"})
    """
    module_globals = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            module_globals[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*names, *(key for key in module_globals if not key.startswith("_"))})

    return __getattr__, __dir__, sorted(names)
