"""`i2i eval --sr OUTPUTS --hr HR`: existing outputs scored by name with the published conventions,
LPIPS and FID wired into `i2i eval`, and the progress bar in every mode."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli as run
from i2i.data.io import write_image
from i2i.eval_outputs import evaluate_outputs, match_outputs
from i2i.evaluation import DeepMetrics, crop_border, evaluate_sr, sr_scores
from i2i.errors import DataError

from test_eval_fid import random_fid_weights  # tests/ is on sys.path (no __init__.py)
from test_eval_lpips import random_backbone, random_linear

skdata = pytest.importorskip("skimage.data")



def damaged(image: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, 10.0, image.shape)
    return np.clip(image + noise, 0, 255).round().astype(np.uint8)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """HR crops of real photos and outputs named NAME_x4 (one extra on each side)."""
    hr_dir, sr_dir = tmp_path / "hr", tmp_path / "sr"
    photos = {"astronaut": skdata.astronaut()[:64, 180:244], "sub/chelsea": skdata.chelsea()[80:144, 150:214],
              "coffee": skdata.coffee()[100:164, 200:264]}
    pairs = {}
    for i, (name, hr) in enumerate(photos.items()):
        out = damaged(hr, i)
        write_image(hr_dir / f"{name}.png", hr)
        write_image(sr_dir / f"{name}_x4.png", out)
        pairs[name] = (out, hr)
    write_image(hr_dir / "lonely.png", photos["coffee"])
    write_image(sr_dir / "stray_x4.png", photos["coffee"])
    return sr_dir, hr_dir, pairs


def test_outputs_are_matched_by_name_and_suffix(folders) -> None:
    sr_dir, hr_dir, _ = folders
    pairs, unmatched_sr, unmatched_hr = match_outputs(sr_dir, hr_dir, "_x4")
    assert [(n, s.name, h.name) for n, s, h in pairs] == [
        ("astronaut", "astronaut_x4.png", "astronaut.png"), ("coffee", "coffee_x4.png", "coffee.png"),
        ("sub/chelsea", "chelsea_x4.png", "chelsea.png")]
    assert unmatched_sr == ["stray_x4.png"] and unmatched_hr == ["lonely.png"]
    with pytest.raises(DataError, match=r"No output .* same name.*add --sr-suffix _x4\."):
        match_outputs(sr_dir, hr_dir)
    write_image(hr_dir / "coffee.jpg", skdata.coffee()[:20, :20])
    with pytest.raises(DataError, match=r"coffee\.jpg and coffee\.png"):
        match_outputs(sr_dir, hr_dir, "_x4")


def test_cli_scores_outputs_per_image_with_the_conventions(folders, tmp_path: Path) -> None:
    sr_dir, hr_dir, pairs = folders
    result = run("eval", "--sr", sr_dir, "--hr", hr_dir, "--sr-suffix", "_x4", "--scale", "4", "--format", "json")
    report = json.loads(result.stdout)
    expected = {f"{n}_x4.png": sr_scores(out, hr, border=4) for n, (out, hr) in pairs.items()}
    assert {s["image"]: (s["psnr"], s["ssim"]) for s in report["images"]} == pytest.approx(expected)
    assert report["mean"]["psnr"] == pytest.approx(np.mean([v[0] for v in expected.values()]))
    assert report["settings"]["border_crop"] == 4 and report["settings"]["channel"].startswith("Y")
    assert report["unmatched"] == {"sr": ["stray_x4.png"], "hr": ["lonely.png"]}
    assert "stray_x4.png" in result.stderr and "lonely.png" in result.stderr
    table = run("eval", "--sr", sr_dir, "--hr", hr_dir, "--sr-suffix", "_x4", "--rgb", "--crop-border", "0").stdout
    rgb = sr_scores(*pairs["coffee"], border=0, y_channel=False)
    assert table.startswith("# ") and "RGB, border crop 0" in table.splitlines()[0]
    assert f"{rgb[0]:.2f}" in next(line for line in table.splitlines() if line.startswith("coffee_x4.png"))
    assert "without a partner: lonely.png" in table and table.count("\n") >= 6
    run("eval", "--sr", sr_dir, "--hr", hr_dir, "--sr-suffix", "_x4", "--format", "csv", "-o", tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "image,width,height,psnr,ssim" and lines[-1].startswith("mean,,,") and len(lines) == 5


def test_size_mismatch_names_both_files_or_follows_the_scale_rule(folders) -> None:
    sr_dir, hr_dir, pairs = folders
    out, hr = pairs["coffee"]
    hr = hr[:62, :63]  # a ground truth that is not a multiple of 4 ...
    write_image(hr_dir / "coffee.png", hr)
    write_image(sr_dir / "coffee_x4.png", out[:60, :60])  # ... and the x4 output of its cropped copy's LR
    result = run("eval", "--sr", sr_dir, "--hr", hr_dir, "--sr-suffix", "_x4", code=1)
    assert "coffee_x4.png is 60x60, coffee.png is 63x62" in result.output and "--scale" in result.output
    report = evaluate_outputs(sr_dir, hr_dir, sr_suffix="_x4", scale=4)
    coffee = next(s for s in report.images if s.image == "coffee_x4.png")
    assert (coffee.psnr, coffee.ssim) == pytest.approx(sr_scores(out[:60, :60], hr[:60, :60], border=4))
    with pytest.raises(DataError, match=r"up to 1 pixels larger"):
        evaluate_outputs(sr_dir, hr_dir, sr_suffix="_x4", scale=2)


def test_eval_option_errors_name_the_mode(folders) -> None:
    sr_dir, hr_dir, _ = folders
    for args, words in ((["--sr", sr_dir], "Give --hr"), (["--sr", sr_dir, "--hr", hr_dir, "--model", "x4"], "--model"),
                        (["--hr", hr_dir, "--sr-suffix", "_x4"], "--sr-suffix"),
                        (["--niqe", "--sr", sr_dir, "--lpips"], "--lpips")):
        result = run("eval", *args, code=2)
        assert result.output.startswith("Error:") and words in result.output and result.output.strip().count("\n") == 0


def test_progress_bar_in_every_mode(folders, tmp_path: Path) -> None:
    sr_dir, hr_dir, _ = folders
    big = tmp_path / "big"
    write_image(big / "chelsea.png", skdata.chelsea())
    for args, count in ((["--sr", sr_dir, "--hr", hr_dir, "--sr-suffix", "_x4"], "3/3"),
                        (["--hr", hr_dir, "--scale", "4"], "4/4"), (["--niqe", "--sr", big], "1/1")):
        result = run("eval", *args, "--progress", "--format", "json")
        assert count in result.stderr and "img/s" in result.stderr  # count, rate and ETA
        assert json.loads(result.stdout)["images"]
        assert run("eval", *args, "--format", "json").stderr.count("img/s") == 0  # not a terminal: no bar


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # two images: singular covariances
def test_lpips_and_fid_from_the_cli(folders, tmp_path: Path, monkeypatch) -> None:
    sr_dir, hr_dir, pairs = folders
    random_backbone("alex", tmp_path / "alex.pth")
    random_linear("alex", tmp_path / "lin.pth")
    random_fid_weights(tmp_path / "fid.pth")
    (sr_dir / "coffee_x4.png").unlink()  # two pairs: the Inception at 299x299 is the slow part
    (hr_dir / "coffee.png").unlink()
    pairs.pop("coffee")
    import i2i.fid

    # scipy's sqrtm of the full 2048x2048 product takes minutes here: the distance on 32 dimensions
    # (tests/test_eval_fid.py checks the formula itself); keep what it was given.
    real_distance, given = i2i.fid.frechet_distance, []
    monkeypatch.setattr(i2i.fid, "frechet_distance", lambda a, b: given.append((a, b)) or real_distance(a[:, :32], b[:, :32]))
    result = run("eval", "--sr", sr_dir, "--hr", hr_dir, "--sr-suffix", "_x4", "--scale", "4", "--format", "json",
                 "--lpips-weights", tmp_path / "lin.pth", "--lpips-backbone-weights", tmp_path / "alex.pth",
                 "--fid-weights", tmp_path / "fid.pth", "--device", "cpu")
    report = json.loads(result.stdout)
    deep = DeepMetrics.load(lpips=True, lpips_weights=tmp_path / "lin.pth", lpips_backbone_weights=tmp_path / "alex.pth",
                            fid=True, fid_weights=tmp_path / "fid.pth")
    from i2i.fid import fid_features
    from i2i.lpips import lpips_distance

    names = sorted(pairs)  # the report's order: by matched name
    for name, scores in zip(names, report["images"]):
        out, hr = (crop_border(x, 4) for x in pairs[name])
        assert scores["lpips"] == pytest.approx(lpips_distance(deep.lpips, out, hr), abs=1e-6) and scores["lpips"] > 0
    (outputs, truths), = given  # one FID: the outputs' features against the ground truth's, in order
    assert outputs.shape == truths.shape == (2, 2048)
    last_output = fid_features(deep.fid, [crop_border(pairs[names[-1]][0], 4)])[0]
    np.testing.assert_allclose(outputs[-1], last_output, rtol=1e-5, atol=1e-6)
    assert not np.allclose(outputs[-1], truths[-1])  # the ground truth's features, not the output's again
    assert report["fid"]["outputs"] == pytest.approx(real_distance(outputs[:, :32], truths[:, :32]), rel=1e-9)
    assert report["fid"]["outputs"] > 0 and "lpips" in report["settings"] and "fid" in report["settings"]


def test_missing_lpips_weights_is_one_line(folders, tmp_path: Path, monkeypatch) -> None:
    sr_dir, hr_dir, _ = folders
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    result = run("eval", "--sr", sr_dir, "--hr", hr_dir, "--sr-suffix", "_x4", "--lpips", code=1)
    assert result.output.startswith("Error:") and "alexnet-owt-7be5be79.pth" in result.output
    result = run("eval", "--sr", sr_dir, "--hr", hr_dir, "--sr-suffix", "_x4", "--fid", code=1)
    assert "pt_inception-2015-12-05-6726825d.pth" in result.output and "--fid-weights" in result.output


def test_model_mode_reports_lpips_of_the_bicubic_baseline(folders, tmp_path: Path) -> None:
    _, hr_dir, _ = folders
    random_backbone("alex", tmp_path / "alex.pth")
    random_linear("alex", tmp_path / "lin.pth")
    deep = DeepMetrics.load(lpips=True, lpips_weights=tmp_path / "lin.pth", lpips_backbone_weights=tmp_path / "alex.pth")
    report = evaluate_sr(None, hr_dir, scale=2, deep=deep)
    assert all(s.bicubic_lpips is not None and s.bicubic_lpips > 0 for s in report.images)
    assert report.mean["bicubic_lpips"] == pytest.approx(np.mean([s.bicubic_lpips for s in report.images]))
    from i2i.eval_report import format_report

    assert format_report(report).splitlines()[1].split()[-1] == "LPIPS"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lpips_and_fid_features_on_cuda_match_the_cpu(folders, tmp_path: Path) -> None:
    _, _, pairs = folders
    random_backbone("alex", tmp_path / "alex.pth")
    random_linear("alex", tmp_path / "lin.pth")
    random_fid_weights(tmp_path / "fid.pth")
    options = dict(lpips=True, lpips_weights=tmp_path / "lin.pth", lpips_backbone_weights=tmp_path / "alex.pth",
                   fid=True, fid_weights=tmp_path / "fid.pth")
    cpu, cuda = DeepMetrics.load(**options), DeepMetrics.load(**options, device="cuda")
    out, hr = pairs["coffee"]
    assert cuda.score(out, hr, border=4, name="o") == pytest.approx(cpu.score(out, hr, border=4, name="o"), abs=1e-4)
    np.testing.assert_allclose(cuda.features["o"][0], cpu.features["o"][0], rtol=1e-3, atol=1e-3)


def test_a_gray_photo_is_scored_on_its_own_plane_as_basicsr_does(tmp_path) -> None:
    """BasicSR's Y-channel scores leave a one-plane image as it is: a gray photo's PSNR is on its
    0-255 levels, not on the Y of three equal planes (which squeezes them into 16-235)."""
    hr = skdata.camera()[100:196, 200:296]
    out = damaged(hr, 7)
    write_image(tmp_path / "hr" / "camera.png", hr)
    write_image(tmp_path / "sr" / "camera.png", out)
    report = evaluate_outputs(tmp_path / "sr", tmp_path / "hr", crop_border=4, progress=False)
    a, b = crop_border(out.astype(np.float64), 4), crop_border(hr.astype(np.float64), 4)
    plane_psnr = 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))
    assert report.images[0].psnr == pytest.approx(plane_psnr, abs=1e-9)
    # A colour copy of the output against the gray HR is compared in colour: Y of equal planes.
    colour = np.repeat(out[:, :, None], 3, axis=2)
    y_psnr, _ = sr_scores(colour, hr[:, :, None], border=4)
    assert y_psnr > plane_psnr + 1  # the squeezed range reads better: why the plane is the convention
