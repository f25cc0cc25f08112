"""How result objects show themselves in a notebook: a one-line ``repr`` and, where a table
helps, an HTML table (``_repr_html_``). The one home of that markup."""

from __future__ import annotations

import html
from collections.abc import Sequence


def html_table(rows: Sequence[Sequence[object]], headers: Sequence[str] = (), *, caption: str = "") -> str:
    """A small HTML table (every cell escaped): ``headers`` on top when given; rows of
    ``(name, value)`` pairs read as a two-column property list."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{title}" + (f"<thead><tr>{head}</tr></thead>" if head else "") + f"<tbody>{body}</tbody></table>"
