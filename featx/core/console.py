"""The one home of user-facing output: log level, log format and progress bars.

Library modules log through ``logging.getLogger(__name__)`` and ask this module for a
progress bar; nothing else in featx prints to the terminal except the CLI's results.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a bar is shown: `featx --help` and `featx cache ls` need none
    from tqdm import tqdm

_quiet = False


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


def setup_logging(verbosity: int = 0) -> None:
    """Configure featx's log output on stderr.

    Args:
        verbosity: -1 quiet (warnings only, no progress bars), 0 normal (info), 1+ debug.
    """
    global _quiet
    _quiet = verbosity < 0
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logger = logging.getLogger("featx")
    logger.setLevel(level)
    if not any(getattr(h, "_featx", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("featx: %(message)s"))
        handler._featx = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


def progress(*, total: int | None, desc: str, unit: str = "img", **kwargs: Any) -> tqdm:
    """A progress bar on stderr showing rate and ETA; silent when quiet or not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        dynamic_ncols=True,
        file=sys.stderr,
        disable=True if _quiet else None,
        mininterval=0.5,
        **kwargs,
    )


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
