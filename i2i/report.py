"""A static HTML page that shows images side by side (no server needed)."""
from __future__ import annotations

import html
import os
from pathlib import Path

__all__ = ["write_comparison_page"]


def write_comparison_page(page: str | Path, rows: list[dict[str, Path | str]], *, title: str, note: str = "") -> Path:
    """Write ``page``: one table row per dict, one column per key. A Path value is an image,
    linked relative to the page; a str value is shown as text (a score, a name)."""
    page = Path(page)
    page.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            if isinstance(value, str):
                cells.append(f"<td>{html.escape(value)}</td>")
            elif value:
                rel = os.path.relpath(value, page.parent)
                cells.append(f"<td><img src='{html.escape(rel)}' title='{html.escape(rel)}'></td>")
            else:
                cells.append("<td></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    page.write_text(
        "<!doctype html><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>img{{max-width:320px}} td,th{{padding:4px}}</style>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>"
        f"<table><tr>{head}</tr>{''.join(body)}</table>"
    )
    return page
