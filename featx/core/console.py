"""The one home of user-facing output: log level, log format and progress bars.

Library modules log through ``logging.getLogger(__name__)`` and ask this module for a
progress bar; nothing else in featx prints to the terminal except the CLI's results.
"""

from __future__ import annotations

import logging
import reprlib
import sys
import warnings
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # imported when a bar is shown: `featx --help` and `featx cache ls` need none
    from tqdm import tqdm

_quiet = False

#: the longest quote of a user's value (or of another library's message) in one line of output
QUOTE_LIMIT = 200
#: the longest line featx writes for a warning of another library
FOREIGN_LIMIT = 300

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict, _repr.maxset = 3, 8, 8, 8, 8
_repr.maxstring, _repr.maxother, _repr.maxlong = QUOTE_LIMIT, QUOTE_LIMIT, 40


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` on one line (whitespace runs folded), cut to ``limit`` characters with "..." when longer."""
    one_line = " ".join(str(text)[: limit * 4].split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3].rstrip() + "..."


def one_line(text: str, limit: int = 4 * QUOTE_LIMIT) -> str:
    """``text`` as one line of at most about ``limit`` characters: whitespace runs folded,
    and the middle of a longer text elided, so that its start (what went wrong) and its
    end (what to do) both survive."""
    folded = " ".join(str(text).split())
    if len(folded) <= limit:
        return folded
    keep = (limit - 5) // 2
    return f"{folded[:keep].rstrip()} ... {folded[-keep:].lstrip()}"


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """The ``repr`` of a user's value for a message, never longer than ``limit`` characters.

    Nested and long values are abbreviated while the repr is built (``reprlib``), so a
    value of millions of elements (a YAML alias bomb) costs no more than a short one.
    """
    return shorten(_repr.repr(value), limit)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when set up.

    click's test runner (and anything that redirects stderr) swaps ``sys.stderr`` per
    invocation; a handler bound once to the first stream loses every later message.
    """

    @property  # type: ignore[override,unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _ShortFormatter(logging.Formatter):
    """One line per record of another library (timm, torch, PIL, dask): its logger's
    top-level name, then the first :data:`FOREIGN_LIMIT` characters of the message."""

    def __init__(self, limit: int | None) -> None:
        super().__init__()
        self.limit = limit

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        source = record.name.split(".")[0]
        text = f"featx: {source}: {message}" if source != "featx" else f"featx: {message}"
        return shorten(text, self.limit) if self.limit else text


def _install(logger: logging.Logger, formatter: logging.Formatter) -> None:
    """Give ``logger`` featx's stderr handler (once) with ``formatter``."""
    handler = next((h for h in logger.handlers if getattr(h, "_featx", False)), None)
    if handler is None:
        handler = _StderrHandler()
        handler._featx = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    handler.setFormatter(formatter)


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: TextIO | None = None, line: str | None = None
) -> None:
    """``warnings.showwarning`` of the command line: a warning is one short line of featx's log."""
    logging.getLogger("featx.warnings").warning("%s: %s", category.__name__, message)


def setup_logging(verbosity: int = 0) -> None:
    """Configure featx's log output on stderr (the command line calls this; a library user
    configures logging as they like).

    featx's own messages go out as ``featx: message``. What other libraries say is routed
    into the same log, one short line each: their log records of level WARNING and
    above (timm, torch, PIL, dask) and Python warnings (PIL's DecompressionBombWarning,
    matplotlib's missing glyphs, deprecations), each cut to :data:`FOREIGN_LIMIT`
    characters unless ``verbosity`` asks for debug output.

    Args:
        verbosity: -1 quiet (warnings only, no progress bars), 0 normal (info), 1+ debug.
    """
    global _quiet
    _quiet = verbosity < 0
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    limit = None if verbosity > 0 else FOREIGN_LIMIT
    logger = logging.getLogger("featx")
    logger.setLevel(level)
    _install(logger, logging.Formatter("featx: %(message)s"))
    logger.propagate = False
    warned = logging.getLogger("featx.warnings")
    _install(warned, _ShortFormatter(limit))
    warned.propagate = False
    root = logging.getLogger()
    _install(root, _ShortFormatter(limit))
    for handler in root.handlers:
        if getattr(handler, "_featx", False):
            handler.setLevel(logging.WARNING)
    warnings.showwarning = _show_warning


def progress(*, total: int | None, desc: str, unit: str = "img", **kwargs: Any) -> tqdm:
    """A progress bar showing rate and ETA: on stderr in a terminal (silent when quiet or
    not a terminal), a notebook widget in Jupyter (tqdm's own choice, ``tqdm.auto``)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        dynamic_ncols=True,
        file=sys.stderr,
        disable=True if _quiet else False if in_notebook() else None,  # None: off unless a terminal
        mininterval=0.5,
        **kwargs,
    )


def in_notebook() -> bool:
    """Whether featx runs in a Jupyter kernel, where no stream is a terminal but progress
    bars show (as widgets with ipywidgets, else as text)."""
    return "ipykernel" in sys.modules


def format_table(rows: list[list[str]], headers: list[str]) -> str:
    """Left-aligned plain-text table with a header row."""
    table = [headers, *rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table)


def human_bytes(n_bytes: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n_bytes) < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"
