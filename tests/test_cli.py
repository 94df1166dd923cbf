"""The command line end to end: train, translate, models, fine-tuning."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import SHARED, tiny_pix2pix, run_cli as run
from i2i.checkpoint import load_generator, load_training_state
from i2i.data.io import read_image, write_image

REFERENCES = SHARED / "reference-checkpoints"



def test_main_job_upscales_held_out_photos_better_than_bicubic(tmp_path):
    out = tmp_path / "demo"
    result = run("demo", out)
    html = (out / "index.html").read_text()
    inputs = sorted((out / "photos").iterdir())
    # Every held-out photo scikit-image ships (no scikit-learn needed), the gray one included.
    assert [p.stem for p in inputs] == ["camera", "chelsea", "coffee"]
    assert html.count("<tr>") == len(inputs) + 1 and f"{len(inputs)} photos the model never saw" in html
    for path in inputs:
        low = read_image(path)
        high = read_image(out / "upscaled" / path.name)
        assert high.shape == (4 * low.shape[0], 4 * low.shape[1], low.shape[2])  # gray stays gray
        # The zoomed columns: one 80x80 window of each image, enlarged 4x by pixel repetition.
        zooms = {kind: read_image(out / "zoom" / f"{path.stem}_{kind}.png") for kind in ("bicubic", "upscaled", "original")}
        assert all(z.shape[:2] == (320, 320) for z in zooms.values())
        assert np.array_equal(zooms["original"][::4, ::4], zooms["original"][3::4, 3::4])
        assert f"zoom/{path.stem}_upscaled.png" in html
    assert read_image(out / "upscaled" / "camera.png").shape[2] == 1
    scores = re.findall(r"bicubic ([0-9.]+) dB / [0-9.]+; i2i ([0-9.]+) dB", html)
    assert len(scores) == len(inputs) and all(float(i2i) > float(bicubic) for bicubic, i2i in scores)
    assert "Comparison page" in result.output


def test_pix2pix_demo_trains_translates_and_writes_a_page(tmp_path):
    out = tmp_path / "demo"
    result = run("demo", out, "--kind", "pix2pix", "--set", "train.max_steps=3")
    page = out / "index.html"
    assert str(page) in result.output
    html = page.read_text()
    inputs = sorted((out / "test" / "input").iterdir())
    assert inputs and html.count("<tr>") == len(inputs) + 1
    (run_dir,) = (out / "runs").iterdir()
    for path in inputs:
        output = out / "test" / "output" / run_dir.name / path.name
        assert read_image(output).shape == read_image(path).shape
        assert f"output/{run_dir.name}/{path.name}" in html
    # A second demo reuses the data and trains into a new run folder.
    run("demo", out, "--kind", "pix2pix", "--set", "train.max_steps=1", "--set", "train.name=second")
    assert (out / "runs" / "second" / "generator.safetensors").exists() and run_dir.exists()


def test_models_lists_the_architectures():
    out = run("models").output.split()
    assert {"unet_256", "unet_128", "patchgan", "pixel_discriminator", "resnet_9blocks"} <= set(out)


def test_train_dry_run_prints_the_resolved_config(tmp_path):
    # The data root must exist now: a dry run checks it, as a real run does before building models.
    (tmp_path / "data").mkdir()
    out = run(
        "train", "pix2pix_demo", "--set", f"data.root={tmp_path / 'data'}", "--set", "task.lambda_l1=50",
        "--set", f"train.output_dir={tmp_path / 'runs'}", "--dry-run",
    ).output
    resolved = yaml.safe_load(out)
    assert resolved["data"]["root"] == str(tmp_path / "data")
    assert resolved["task"]["lambda_l1"] == 50.0
    assert resolved["task"]["generator"]["name"] == "unet_128"
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # a dry run writes nothing


def test_user_mistakes_give_one_line_errors_without_traceback(tmp_path):
    # Config and option mistakes exit with 2 (usage), failed work with 1.
    result = run("train", "pix2pix_demo", "--set", "train.max_step=3", code=2)
    assert "Unknown config key train.max_step" in result.output and "Traceback" not in result.output
    result = run("train", "no_such_recipe", code=2)
    assert "built-in recipe" in result.output
    image = tmp_path / "in.png"
    write_image(image, np.zeros((8, 8, 3), np.uint8))
    result = run("translate", "--model", image, image, tmp_path / "out.png", code=1)
    assert "Error:" in result.output and "Traceback" not in result.output


def test_train_then_translate_a_folder_tree(demo_data, tmp_path):
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path / "runs", max_steps=4)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    run("train", config)
    run_dir = tmp_path / "runs" / "run"

    src = tmp_path / "photos"
    write_image(src / "odd.png", (np.random.rand(37, 53, 3) * 255).astype(np.uint8))
    write_image(src / "sub" / "gray.png", (np.random.rand(20, 30, 1) * 255).astype(np.uint8))
    rgba = (np.random.rand(33, 17, 4) * 65535).astype(np.uint16)
    write_image(src / "sub" / "deep" / "alpha16.png", rgba)
    out = tmp_path / "out"
    result = run("translate", "--model", run_dir, src, out)
    assert "3 written" in result.output
    odd = read_image(out / "odd.png")
    assert odd.shape == (37, 53, 3) and odd.dtype == np.uint8
    assert read_image(out / "sub" / "gray.png").shape == (20, 30, 3)  # a colour generator gives colour
    alpha16 = read_image(out / "sub" / "deep" / "alpha16.png")
    assert alpha16.dtype == np.uint16 and alpha16.shape == (33, 17, 4)
    assert np.array_equal(alpha16[..., 3], rgba[..., 3])  # alpha carried through untouched

    # Existing outputs are skipped; --overwrite replaces them; inputs are never touched.
    before = (src / "odd.png").read_bytes()
    assert "3 skipped" in run("translate", "--model", run_dir, src, out).output
    assert "3 written" in run("translate", "--model", run_dir, src, out, "--overwrite").output
    assert (src / "odd.png").read_bytes() == before
    result = run("translate", "--model", run_dir, src, src / "nested", code=1)
    assert "inside the input folder" in result.output

    # A corrupt file is reported with its path; the rest is still written; exit status 1.
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = run("translate", "--model", run_dir, src, tmp_path / "out2", code=1)
    assert "3 written" in result.output and "broken.png" in result.output


@pytest.mark.skipif(not REFERENCES.is_dir(), reason="../shared/reference-checkpoints is absent")
@pytest.mark.parametrize(
    "name",
    [
        "junyanz_unet256_batch_dropout_ngf8",
        "junyanz_unet128_instance_ngf8",
        "junyanz_resnet9_instance_ngf8",
        "junyanz_resnet6_instance_ngf8_1to3ch",
        "junyanz_resnet9_instance_legacy_runningstats_ngf8",
    ],
)
def test_translating_the_reference_png_matches_the_reference_output(name, tmp_path):
    out = tmp_path / "out.png"
    # The references are eval-mode outputs (train mode, test.py's default and i2i's `auto` for these
    # files, draws dropout and is not reproducible bit for bit).
    run("translate", "--norm-mode", "eval", "--model", REFERENCES / f"{name}.pth", REFERENCES / f"{name}.input.png", out)
    reference = torch.load(REFERENCES / f"{name}.io.pt", weights_only=True)["output"][0]
    expected = ((reference.permute(1, 2, 0).numpy() + 1) / 2 * 255).round()
    got = read_image(out).astype(np.float64)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1.0


@pytest.mark.skipif(not REFERENCES.is_dir(), reason="../shared/reference-checkpoints is absent")
@pytest.mark.parametrize(
    "name",
    [
        "realesrgan_rrdbnet_x4_f16b2g32",
        "realesrgan_rrdbnet_x2_f16b1g32",
        "esrgan_oldarch_rrdbnet_x4_f16b2g32",
        "realesrgan_srvgg_x4_f16c4",
        "realesr_animevideov3_x4_real",
    ],
)
def test_upscaling_a_folder_with_a_reference_file_matches_the_reference_output(name, tmp_path):
    # ESRGAN / Real-ESRGAN files load with no flags: input in [0, 1], output clamped to 8 bits.
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "in.png").write_bytes((REFERENCES / f"{name}.input.png").read_bytes())
    run("upscale", "--model", REFERENCES / f"{name}.pth", photos, tmp_path / "out")
    reference = torch.load(REFERENCES / f"{name}.io.pt", weights_only=True)["output"][0]
    expected = (reference.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round()
    got = read_image(tmp_path / "out" / "in.png").astype(np.float64)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1.0


@pytest.mark.skipif(not REFERENCES.is_dir(), reason="../shared/reference-checkpoints is absent")
def test_finetune_from_an_official_file_with_a_frozen_encoder(demo_data, tmp_path):
    official = REFERENCES / "junyanz_unet128_instance_ngf8.pth"
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path / "runs", max_steps=3)
    raw["task"].update(freeze_encoder=True, lr=1e-4)
    raw["task"]["discriminator"] = {"name": "patchgan", "base_channels": 8, "n_layers": 2, "norm": "instance"}
    raw["data"].update(load_size=136, crop_size=128, batch_size=2)
    config = tmp_path / "ft.yaml"
    config.write_text(yaml.safe_dump(raw))
    run("train", config, "--init-from", official)
    start, _ = load_generator(official)
    tuned, info = load_generator(tmp_path / "runs" / "run" / "generator.safetensors")
    assert info.model == "unet_128" and info.kwargs["norm"] == "instance"  # architecture from the file
    s0, s1 = start.state_dict(), tuned.state_dict()
    encoder = [k for k in s0 if k.startswith("down.")]
    decoder = [k for k in s0 if k.startswith("up.")]
    assert encoder and all(torch.equal(s0[k], s1[k]) for k in encoder)
    assert any(not torch.equal(s0[k], s1[k]) for k in decoder)
