"""NIQE against the reference implementation on real photos, its response to blur and noise, and
`i2i eval --niqe --sr OUTPUTS`."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import run_cli as run
from i2i.data.io import write_image
from i2i.errors import DataError
from i2i.evaluation import evaluate_niqe, format_report
from i2i.niqe import niqe, niqe_batch

skdata = pytest.importorskip("skimage.data")

# Reference values: BasicSR 1.4.2's `basicsr/metrics/niqe.py` (`calculate_niqe`, unmodified, with
# its `niqe_pris_params.npz`), run in a separate virtual environment (numpy 2.4, scipy 1.17,
# opencv-python-headless, torch 2.13 CPU for its imresize) on scikit-image 0.26's photos, each
# read as BGR uint8 as BasicSR expects (camera as a gray 'HW' image):
#   calculate_niqe(img, crop_border, input_order="HWC", convert_to="y" | "gray")
# (image, crop_border, y_channel, region rows y0:y1 and columns x0:x1 or None, reference NIQE)
REFERENCE = [
    ("astronaut", 0, True, None, 3.0649476661847754),
    ("astronaut", 0, False, None, 3.0610040667996845),
    ("chelsea", 0, True, None, 2.6255243812915023),
    ("chelsea", 0, False, None, 2.57208331399021),
    ("coffee", 0, True, None, 4.115241615372862),
    ("coffee", 0, False, None, 4.0593383127379035),
    ("camera", 0, True, None, 3.096206619345783),
    ("astronaut", 4, True, None, 2.9912960484545486),
    ("coffee", 0, True, (50, 300, 100, 400), 6.99556543649174),
]
# The largest difference measured is 5.8e-4 (astronaut, crop 4). It comes from the second scale:
# the reference shrinks the plane in float32 (i2i in float64, rounded to float32 after), and in
# the flat black areas of the astronaut photo its float32 rounding noise becomes nonzero MSCN
# coefficients whose signs enter the AGGD fits. With the reference's half-size plane the
# difference is 3e-5; on photos without flat areas it is under 1e-5.
TOLERANCE = 1e-3


def photo(name: str) -> np.ndarray:
    return getattr(skdata, name)()


@pytest.mark.parametrize("name, crop, y_channel, region, expected", REFERENCE)
def test_niqe_matches_the_reference_implementation(name, crop, y_channel, region, expected) -> None:
    image = photo(name)
    if region is not None:
        y0, y1, x0, x1 = region
        image = image[y0:y1, x0:x1]
    assert niqe(image, crop_border=crop, y_channel=y_channel) == pytest.approx(expected, abs=TOLERANCE)


def test_blur_and_noise_raise_niqe() -> None:
    image = photo("chelsea")
    clean = niqe(image)
    blurred = niqe(cv2.GaussianBlur(image, (0, 0), 2.0))
    noise = np.random.default_rng(0).normal(0.0, 15.0, image.shape)
    noisy = niqe(np.clip(image + noise, 0, 255).round().astype(np.uint8))
    assert clean < 4.0
    assert blurred > clean + 2.0
    assert noisy > clean + 2.0


def test_gray_rgba_and_layouts() -> None:
    camera = photo("camera")
    assert niqe(camera[:, :, None]) == niqe(camera) == niqe(camera, y_channel=False)
    rgb = photo("coffee")[:200, :300]
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    assert niqe(rgba) == niqe(rgb)


def test_niqe_batch_matches_niqe() -> None:
    images = [photo("chelsea")[:192, :288], photo("coffee")[100:292, 50:338]]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    scores = niqe_batch(batch)
    assert scores.shape == (2,) and scores.dtype == torch.float64
    assert scores.tolist() == pytest.approx([niqe(x) for x in images], abs=1e-9)
    gray = niqe_batch(batch[:, :1])
    assert gray[0].item() == pytest.approx(niqe(images[0][:, :, 0]), abs=1e-9)


def test_bad_inputs_raise_data_errors() -> None:
    with pytest.raises(DataError, match="two 96x96 blocks"):
        niqe(photo("chelsea")[:150, :150])
    with pytest.raises(DataError, match="two 96x96 blocks"):
        niqe(photo("chelsea")[:192, :192], crop_border=10)
    with pytest.raises(DataError, match="uint8"):
        niqe(photo("chelsea").astype(np.float32))
    with pytest.raises(DataError, match="shape"):
        niqe(np.zeros((200, 200, 2), np.uint8))
    with pytest.raises(DataError, match=r"\(B, 1\|3, H, W\)"):
        niqe_batch(torch.zeros(3, 200, 200))


def test_a_flat_image_has_no_score() -> None:
    assert np.isnan(niqe(np.zeros((200, 300, 3), np.uint8)))
    assert torch.isnan(niqe_batch(torch.full((1, 3, 192, 192), 0.5))).all()


def test_the_pristine_model_ships_with_its_origin() -> None:
    from importlib import resources

    with resources.as_file(resources.files("i2i.assets") / "niqe_pristine.npz") as path:
        data = np.load(path, allow_pickle=False)
        assert data["mu"].shape == (36,) and data["cov"].shape == (36, 36)
        assert np.allclose(data["cov"], data["cov"].T)
        assert "niqe_release" in str(data["origin"]) and "University of Texas at Austin" in str(data["notice"])


# --- i2i eval --niqe --sr OUTPUTS ----------------------------------------------------------------



@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    folder = tmp_path / "sr"
    write_image(folder / "chelsea.png", photo("chelsea"))
    write_image(folder / "sub" / "camera.png", photo("camera"))
    return folder


def test_eval_niqe_reports_each_image_and_the_mean(outputs: Path) -> None:
    expected = {"chelsea.png": niqe(photo("chelsea")), "sub/camera.png": niqe(photo("camera"))}
    table = run("eval", "--niqe", "--sr", outputs).output
    assert table.startswith("# NIQE (lower is better), Y (BT.601")
    assert f"{expected['chelsea.png']:.4f}" in table and "sub/camera.png" in table
    assert f"{np.mean(list(expected.values())):.4f}" in table.splitlines()[-1]
    report = json.loads(run("eval", "--niqe", "--sr", outputs, "--format", "json").output)
    assert {s["image"]: s["niqe"] for s in report["images"]} == pytest.approx(expected)
    assert report["mean"]["niqe"] == pytest.approx(np.mean(list(expected.values())))
    assert report["settings"]["border_crop"] == 0
    csv = run("eval", "--niqe", "--sr", outputs, "--format", "csv", "--crop-border", "4", "--gray").output
    lines = csv.splitlines()
    assert lines[0] == "image,width,height,niqe" and lines[-1].startswith("mean,,,")
    chelsea = float(next(line for line in lines if line.startswith("chelsea")).split(",")[-1])
    assert chelsea == pytest.approx(niqe(photo("chelsea"), crop_border=4, y_channel=False))


def test_eval_niqe_writes_the_report_file(outputs: Path, tmp_path: Path) -> None:
    run("eval", "--niqe", "--sr", outputs, "--format", "csv", "-o", tmp_path / "niqe.csv")
    assert (tmp_path / "niqe.csv").read_text().startswith("image,width,height,niqe\n")


def test_eval_niqe_option_errors(outputs: Path, tmp_path: Path) -> None:
    for args in (["--niqe"], ["--niqe", "--sr", outputs, "--hr", outputs], ["--niqe", "--sr", outputs, "--model", "x4"],
                 ["--sr", outputs], ["--scale", "4"], ["--hr", outputs, "--scale", "4", "--gray"]):
        result = run("eval", *args, code=2)
        assert result.output.startswith("Error:") and result.output.strip().count("\n") == 0, result.output
    write_image(outputs / "tiny.png", photo("chelsea")[:100, :100])
    result = run("eval", "--niqe", "--sr", outputs, code=1)
    assert "tiny.png (100x100)" in result.output and "chelsea.png" not in result.output
    (tmp_path / "empty").mkdir()
    assert "No images" in run("eval", "--niqe", "--sr", tmp_path / "empty", code=1).output


def test_evaluate_niqe_in_python(outputs: Path) -> None:
    report = evaluate_niqe(outputs, crop_border=2)
    assert [s.image for s in report.images] == ["chelsea.png", "sub/camera.png"]
    assert (report.images[0].width, report.images[0].height) == (451, 300)
    assert report.images[0].niqe == pytest.approx(niqe(photo("chelsea"), crop_border=2))
    assert "mean" in format_report(report)
