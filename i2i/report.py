"""Static HTML pages that show images side by side (no server needed): comparison tables, and a
training run's page of sample grids."""
from __future__ import annotations

import html
import os
from pathlib import Path

__all__ = ["write_comparison_page", "write_run_page"]


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


def write_run_page(
    run_dir: str | Path, *, step: int, total_steps: int, columns: str, metrics: dict[str, float]
) -> Path:
    """Write a training run's ``index.html``: its sample grids (``samples/step_*.png``), newest
    first, under the latest value of each metric. ``columns`` says what the grids show."""
    run_dir = Path(run_dir)
    samples = sorted((run_dir / "samples").glob("step_*.png"), reverse=True)
    rows = "\n".join(
        f"<h3>step {int(p.stem.split('_')[1])}</h3><img src='samples/{p.name}' style='image-rendering:pixelated;max-width:100%'>"
        for p in samples
    )
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in metrics.items())
    page = run_dir / "index.html"
    page.write_text(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(run_dir.name)}</title>"
        f"<h1>{html.escape(run_dir.name)}</h1><p>step {step} of {total_steps}. "
        f"Columns: {html.escape(columns)}.</p><table>{table}</table>{rows}"
    )
    return page
