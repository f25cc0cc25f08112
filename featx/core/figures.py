"""The matplotlib canvas every figure of featx is drawn on: Agg, no pyplot, PNG bytes.

No global figure state and no display: each plotting function builds its own
:class:`~matplotlib.figure.Figure` with :func:`figure` and returns :func:`png_bytes`;
:func:`data_uri` embeds them in a self-contained HTML page. A PNG says it was drawn by
featx (its ``Software`` text), which is how :data:`PNG_KIND` recognises featx's plots.
Characters the font lacks (class names in another script) are one line of featx's log,
not a matplotlib warning per glyph.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import warnings
from typing import Any

from featx.core.ownership import FileKind, head

log = logging.getLogger(__name__)

DPI = 110
SOFTWARE = "featx"
_GLYPH = re.compile(r"Glyph (\d+) .*missing from (?:current )?font\(?s?\)?\s*(.*?)\.?$")


def _drawn_by_featx(path: Any) -> bool:
    first = head(path, 512)
    # featx names itself since 0.1.0; earlier featx plots carry matplotlib's own Software text
    return first.startswith(b"\x89PNG\r\n\x1a\n") and (b"tEXtSoftware\x00featx" in first or b"tEXtSoftware\x00Matplotlib" in first)


#: a plot featx drew (a PNG whose Software text names featx, or matplotlib for older featx plots)
PNG_KIND = FileKind("plot", _drawn_by_featx)


def figure(width: float, height: float) -> Any:
    """A constrained-layout figure of ``width`` x ``height`` inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def image_figure(path: Any) -> Any:
    """A figure that shows a PNG file (a plot drawn earlier), at its own size."""
    from matplotlib.image import imread

    image = imread(path)
    fig = figure(image.shape[1] / DPI, image.shape[0] / DPI)
    fig.set_layout_engine("none")
    axes = fig.add_axes((0, 0, 1, 1))
    axes.imshow(image)
    axes.set_axis_off()
    return fig


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG (its ``Software`` text names featx)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(buffer, format="png", metadata={"Software": SOFTWARE})
    _log_warnings(caught)
    return buffer.getvalue()


def _log_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Missing glyphs as one line naming the characters; any other warning as one short line."""
    missing: dict[str, str] = {}
    others: dict[str, None] = {}
    for item in caught:
        found = _GLYPH.search(str(item.message))
        if found:
            missing[chr(int(found.group(1)))] = found.group(2) or "the font"
        else:
            others[f"{item.category.__name__}: {' '.join(str(item.message).split())[:200]}"] = None
    if missing:
        fonts = ", ".join(sorted(set(missing.values())))
        log.warning(
            "the plot's font (%s) lacks %d character(s) of its labels, drawn as boxes: %s",
            fonts,
            len(missing),
            "".join(sorted(missing))[:40],
        )
    for message in others:
        log.warning("while drawing a plot: %s", message)


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>`` that needs no file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
