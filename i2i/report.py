"""Static HTML pages that show images side by side (no server needed): comparison tables, and a
training run's page of sample grids."""
from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

from i2i.files import atomic_write_bytes

__all__ = ["write_comparison_page", "write_run_page", "svg_line_chart"]


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


_SERIES_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _tick(value: float) -> str:
    return f"{value:.4g}"


def _thinned(values: list[tuple[float, float]], limit: int = 1000) -> list[tuple[float, float]]:
    """At most about ``limit`` evenly spaced points, the last one kept: a long run's page stays small."""
    if len(values) <= limit:
        return values
    stride = math.ceil(len(values) / limit)
    return values[::stride] + ([values[-1]] if (len(values) - 1) % stride else [])


def svg_line_chart(
    series: dict[str, list[tuple[float, float]]], *, title: str, width: int = 360, height: int = 160
) -> str:
    """An inline ``<svg>`` line chart of ``{name: [(step, value), ...]}``: one line per series on
    shared axes, the value range and step range written at the axes' ends, a legend below the
    title when there are several. Non-finite values are left out; with nothing to draw the chart says so."""
    points = {k: _thinned([(x, y) for x, y in v if math.isfinite(y)]) for k, v in series.items()}
    points = {k: v for k, v in points.items() if v}
    legend = list(points) if len(points) > 1 else []  # a single series is named by the title
    left, right, top, bottom = 56, 10, 22 + 14 * len(legend), 24
    box = f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + top}' role='img'>"
    parts = [box, f"<title>{html.escape(title)}</title>",
             f"<text x='{left}' y='14' font-size='13' font-weight='bold'>{html.escape(title)}</text>"]
    if not points:
        parts.append(f"<text x='{left}' y='{top + 20}' font-size='12'>nothing logged yet</text></svg>")
        return "".join(parts)
    xs = [x for v in points.values() for x, _ in v]
    ys = [y for v in points.values() for _, y in v]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    x_span, y_span = (x1 - x0) or 1.0, (y1 - y0) or abs(y0) or 1.0
    plot_w, plot_h = width - left - right, height - bottom
    if y1 == y0:  # a flat line sits in the middle
        y0 -= y_span / 2

    def at(x: float, y: float) -> str:
        return f"{left + (x - x0) / x_span * plot_w:.1f},{top + plot_h - (y - y0) / y_span * plot_h:.1f}"

    parts.append(f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='none' stroke='#999'/>")
    for i, (name, values) in enumerate(points.items()):
        colour = _SERIES_COLOURS[i % len(_SERIES_COLOURS)]
        if legend:
            parts.append(f"<text x='{left}' y='{30 + 14 * i}' font-size='11' fill='{colour}'>{html.escape(name)}</text>")
        if len(values) == 1:
            cx, cy = at(*values[0]).split(",")
            parts.append(f"<circle cx='{cx}' cy='{cy}' r='3' fill='{colour}'/>")
        else:
            line = " ".join(at(x, y) for x, y in values)
            parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{line}'/>")
    labels = [
        (left - 4, top + 10, "end", _tick(y0 + y_span)), (left - 4, top + plot_h, "end", _tick(y0)),
        (left, top + plot_h + 14, "start", f"step {x0:g}"), (left + plot_w, top + plot_h + 14, "end", f"step {x1:g}"),
    ]
    for x, y, anchor, text in labels:
        parts.append(f"<text x='{x}' y='{y}' font-size='10' text-anchor='{anchor}'>{html.escape(text)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _series(records: list[dict[str, Any]], prefix: str) -> dict[str, list[tuple[float, float]]]:
    """``{name: [(step, value), ...]}`` of the numeric keys starting with ``prefix``."""
    found: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        for key, value in record.items():
            if key.startswith(prefix) and isinstance(value, (int, float)) and not isinstance(value, bool):
                found.setdefault(key, []).append((float(record.get("step", 0)), float(value)))
    return found


def _validation_section(records: list[dict[str, Any]]) -> str:
    """The latest validation's numbers under the step they were measured at, then every
    validation as a table row, newest first."""
    validations = [r for r in records if any(k.startswith("val/") for k in r)]
    if not validations:
        return "<h2>Validation</h2><p>No validation yet.</p>"
    names = sorted({k for r in validations for k in r if k.startswith("val/")})
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for record in reversed(validations):
        cells = "".join(
            f"<td>{record[n]:.4g}</td>" if isinstance(record.get(n), (int, float)) else "<td></td>" for n in names
        )
        rows.append(f"<tr><td>{int(record.get('step', 0))}</td>{cells}</tr>")
    latest = validations[-1]
    return (
        f"<h2>Validation</h2><p class='latest-validation'>Latest validation, at step "
        f"<b>{int(latest.get('step', 0))}</b>.</p>"
        f"<table class='validation'><tr><th>step</th>{head}</tr>{''.join(rows)}</table>"
    )


def write_run_page(
    run_dir: str | Path, *, step: int, total_steps: int, columns: str, records: list[dict[str, Any]]
) -> Path:
    """Write a training run's ``index.html`` (atomically): loss, learning-rate and validation
    curves as inline SVG, the validation numbers with the step each was measured at, and the
    sample grids (``samples/step_*.png``) newest first. ``records`` are ``metrics.jsonl``'s
    objects in order; ``columns`` says what the grids show."""
    run_dir = Path(run_dir)
    samples = sorted((run_dir / "samples").glob("step_*.png"), reverse=True)
    grids = "\n".join(
        f"<h3>step {int(p.stem.split('_')[1])}</h3><img src='samples/{p.name}' loading='lazy' "
        "style='image-rendering:pixelated;max-width:100%'>"
        for p in samples
    )
    # One chart per series: losses differ in scale by orders of magnitude (L1 x 100 beside a GAN loss).
    series = {**_series(records, "loss/"), **_series(records, "val/")}
    charts = [svg_line_chart({k: v}, title=k) for k, v in series.items()]
    charts.append(svg_line_chart(_series(records, "lr"), title="learning rate"))
    page = run_dir / "index.html"
    text = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(run_dir.name)}</title>"
        "<style>table{border-collapse:collapse} td,th{padding:2px 8px;border:1px solid #ddd}"
        " svg{margin:4px 12px 4px 0}</style>"
        f"<h1>{html.escape(run_dir.name)}</h1><p>step {step} of {total_steps}. "
        f"Sample columns: {html.escape(columns)}.</p>"
        f"<h2>Curves</h2><div>{''.join(charts)}</div>{_validation_section(records)}"
        f"<h2>Samples</h2>{grids or '<p>No samples yet.</p>'}"
    )
    atomic_write_bytes(page, text.encode())
    return page
