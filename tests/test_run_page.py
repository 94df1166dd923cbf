"""The run folder's page (curves, validation by step, samples), the start-up banner and train.log."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import tiny_pix2pix
from i2i.config import parse_config
from i2i.data.datasets import steps_per_epoch
from i2i.report import svg_line_chart, write_run_page
from i2i.trainer import Trainer


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _validation_rows(page: str) -> dict[int, list[str]]:
    """``{step: [cell, ...]}`` of the page's validation table."""
    table = re.search(r"<table class='validation'>(.*?)</table>", page).group(1)
    rows = {}
    for row in re.findall(r"<tr><td>(\d+)</td>(.*?)</tr>", table):
        rows[int(row[0])] = re.findall(r"<td>(.*?)</td>", row[1])
    return rows


def test_the_final_validation_is_shown_under_its_own_step(demo_data, tmp_path):
    # Validation at step 2 and at the end (step 3); the last sample grid is written at step 3
    # before the final validation runs.
    trainer = Trainer(parse_config(tiny_pix2pix(demo_data / "gray2color", tmp_path, max_steps=3, val_every=2)))
    run = trainer.fit()
    page = (run / "index.html").read_text()
    validations = [r for r in _records(run) if "val/l1" in r]
    assert [r["step"] for r in validations] == [2, 3]
    assert "Latest validation, at step <b>3</b>" in page
    rows = _validation_rows(page)
    header = re.findall(r"<th>(val/[^<]+)</th>", page)
    for record in validations:
        assert rows[record["step"]] == [f"{record[name]:.4g}" for name in header]
    assert rows[3] != rows[2]
    # Curves: each loss over the logged steps, each validation metric, the learning rate.
    losses = {k for r in _records(run) for k in r if k.startswith("loss/")}
    assert len(losses) == 3 and page.count("<svg") == len(losses) + len(header) + 1
    assert all(f"<title>{name}</title>" in page for name in (*losses, *header))
    assert "<polyline" in page and "samples/step_0000003.png" in page


def test_chart_puts_the_smallest_value_at_the_bottom_and_the_largest_at_the_top():
    svg = svg_line_chart({"loss/G": [(0, 2.0), (10, 1.0), (20, 3.0)]}, title="losses", width=300, height=200)
    points = [tuple(map(float, p.split(","))) for p in re.search(r"points='([^']+)'", svg).group(1).split()]
    xs, ys = zip(*points)
    assert xs[0] < xs[1] < xs[2]
    assert ys[2] < ys[0] < ys[1]  # SVG's y grows downwards: 3.0 highest, 1.0 lowest
    assert xs[1] - xs[0] == xs[2] - xs[1]
    assert "step 0" in svg and "step 20" in svg and ">3<" in svg and ">1<" in svg


def test_chart_skips_non_finite_values_and_says_when_empty():
    svg = svg_line_chart({"loss/G": [(0, float("nan")), (1, 1.0), (2, float("inf")), (3, 2.0)]}, title="t")
    assert len(re.search(r"points='([^']+)'", svg).group(1).split()) == 2
    assert "nothing logged yet" in svg_line_chart({"loss/G": [(0, float("nan"))]}, title="t")


def test_page_lists_samples_newest_first_and_every_validation(tmp_path):
    (tmp_path / "samples").mkdir()
    for step in (5, 10, 15):
        (tmp_path / "samples" / f"step_{step:07d}.png").write_bytes(b"")
    records = [
        {"step": 5, "loss/G": 1.0, "lr": 0.1},
        {"step": 5, "val/psnr": 20.0},
        {"step": 10, "loss/G": 0.5, "lr": 0.1},
        {"step": 10, "val/psnr": 22.5},
    ]
    page = write_run_page(tmp_path, step=15, total_steps=20, columns="a | b", records=records).read_text()
    assert page.index("step_0000015.png") < page.index("step_0000010.png") < page.index("step_0000005.png")
    assert _validation_rows(page) == {10: ["22.5"], 5: ["20"]}
    assert "Latest validation, at step <b>10</b>" in page
    assert not list(tmp_path.glob(".*.tmp"))


def test_banner_and_train_log_which_a_resumed_run_appends_to(demo_data, tmp_path, capsys):
    root = demo_data / "gray2color"
    Trainer(parse_config(tiny_pix2pix(root, tmp_path, max_steps=2))).fit()
    captured = capsys.readouterr()
    printed = captured.out
    # The bars: training with its rate and ETA, validation (cleared when done) under it.
    assert re.search(r"pix2pix: 100%\|.*\| 2/2 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+(s/step|step/s)", captured.err)
    assert re.search(r"validation: +0%\|.*\| 0/\d+ \[", captured.err)
    train_items = len(list((root / "train").glob("*.png")))
    val_items = min(4, len(list((root / "val").glob("*.png"))))  # data.val_items caps the split
    per_epoch = steps_per_epoch(train_items, 4, 1)
    banner = [
        "Training pix2pix on cpu (fp32, 1 process).",
        f"  data:   {train_items} training / {val_items} validation items from {root}",
        f"  steps:  2 ({2 / per_epoch:.3g} epoch{'' if per_epoch == 2 else 's'} of {per_epoch} steps), batch size 4 per process",
        f"  run:    {tmp_path / 'run'} (index.html, train.log, metrics.jsonl, checkpoints/)",
    ]
    assert "\n".join(banner) in printed
    log_path = tmp_path / "run" / "train.log"
    first = log_path.read_text()
    lines = [line.split(" ", 2)[2] for line in first.splitlines()]  # without the date and time
    assert lines[: len(banner)] == banner
    (loss_line,) = [line for line in lines if line.startswith("step 2: lr")]
    losses = [r for r in _records(tmp_path / "run") if "loss/G_l1" in r][-1]
    assert f"lr {losses['lr']:.3g}, loss/D {losses['loss/D']:.4g}" in loss_line
    assert f"loss/G_l1 {losses['loss/G_l1']:.4g}" in loss_line
    assert lines[-1].startswith("step 2: val/l1")  # the final validation, as printed

    Trainer(resume=tmp_path / "run", overrides=("train.max_steps=4",)).fit()
    second = log_path.read_text()
    assert second.startswith(first)
    assert "resumed at step 2" in second[len(first):] and "step 4: lr" in second[len(first):]


def test_a_long_series_is_thinned_but_keeps_its_ends():
    values = [(float(step), float(step % 7)) for step in range(1, 5002)]
    svg = svg_line_chart({"loss/G": values}, title="loss/G")
    points = re.search(r"points='([^']+)'", svg).group(1).split()
    assert 500 <= len(points) <= 1001
    assert "step 1<" in svg and "step 5001<" in svg
    assert float(points[-1].split(",")[0]) == pytest.approx(360 - 10)  # the last step sits at the right edge
