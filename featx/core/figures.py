"""The matplotlib canvas every figure of featx is drawn on: Agg, no pyplot, PNG bytes.

No global figure state and no display: each plotting function builds its own
:class:`~matplotlib.figure.Figure` with :func:`figure` and returns :func:`png_bytes`;
:func:`data_uri` embeds them in a self-contained HTML page.
"""

from __future__ import annotations

import base64
import io
from typing import Any

DPI = 110


def figure(width: float, height: float) -> Any:
    """A constrained-layout figure of ``width`` x ``height`` inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>`` that needs no file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
