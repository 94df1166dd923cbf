"""i2i.data.demo: real packaged photos -> paired A|B sets with photo-disjoint splits."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import i2i.data.demo as demo
from i2i.cli_data import data_group
from i2i.data.io import list_images, read_image
from i2i.errors import DataError

pytest.importorskip("skimage")

SETS = ("edges2photo", "gray2color")
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.make_paired_demo(tmp_path_factory.mktemp("demo"), size=64, crops_per_photo=2, seed=0)


def _photo_of(path: Path) -> str:
    return path.stem.rsplit("_", 1)[0]  # "chelsea_001.png" -> "chelsea"


def test_layout_sizes_and_counts(demo_dir: Path) -> None:
    available = len(demo.load_demo_photos())
    for name in SETS:
        counts = {split: len(list_images(demo_dir / name / split)) for split in SPLITS}
        assert counts == {"train": 2 * (available - 2), "val": 2, "test": 2}
        for path in list_images(demo_dir / name):
            assert path.suffix == ".png"
            image = read_image(path)
            assert image.shape == (64, 128, 3) and image.dtype == np.uint8
    readme = (demo_dir / "README.txt").read_text()
    assert "skimage.data.astronaut()" in readme and "public domain" in readme


def test_val_and_test_photos_never_appear_in_train(demo_dir: Path) -> None:
    for name in SETS:
        photos = {split: {_photo_of(p) for p in list_images(demo_dir / name / split)} for split in SPLITS}
        assert len(photos["val"]) == 1 and len(photos["test"]) == 1
        assert photos["val"].isdisjoint(photos["train"]) and photos["test"].isdisjoint(photos["train"])
        assert photos["val"] != photos["test"]
        assert len(photos["train"]) >= 1


def test_halves_are_what_they_claim(demo_dir: Path) -> None:
    name = list_images(demo_dir / "gray2color" / "train")[0].name
    gray_pair = read_image(demo_dir / "gray2color" / "train" / name).astype(int)
    gray, colour = gray_pair[:, :64], gray_pair[:, 64:]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    luma = colour @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray[..., 0] - luma).max() <= 1.5  # A really is B in gray
    assert np.ptp(colour[..., 0] - colour[..., 2]) > 0  # B has colour

    edge_pair = read_image(demo_dir / "edges2photo" / "train" / name)
    sketch = edge_pair[:, :64]
    assert set(np.unique(sketch).tolist()) <= {0, 255}  # pure black lines on white
    assert 0.0 < (sketch == 0).mean() < 0.5
    np.testing.assert_array_equal(edge_pair[:, 64:], colour)  # both sets share the crop


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in list_images(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def test_deterministic_for_a_seed(tmp_path: Path, demo_dir: Path) -> None:
    again = demo.make_paired_demo(tmp_path / "again", size=64, crops_per_photo=2, seed=0)
    assert _digest(again) == _digest(demo_dir)
    other = demo.make_paired_demo(tmp_path / "other", size=64, crops_per_photo=2, seed=1)
    assert _digest(other) != _digest(demo_dir)


def test_missing_sources_are_skipped_then_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> np.ndarray:
        raise ImportError("No module named 'not_installed'")

    few = tuple((info, unavailable if index >= 3 else load) for index, (info, load) in enumerate(demo.DEMO_PHOTOS))
    monkeypatch.setattr(demo, "DEMO_PHOTOS", few)
    with pytest.warns(RuntimeWarning, match="skipped"):
        out = demo.make_paired_demo(tmp_path / "three", size=32, crops_per_photo=1)
    assert sum(len(list_images(out / "gray2color" / split)) for split in SPLITS) == 3

    monkeypatch.setattr(demo, "DEMO_PHOTOS", few[:2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # DataError (an I2IError the CLI reports as one line); it was RuntimeError.
        with pytest.raises(DataError, match="at least 3 are needed"):
            demo.make_paired_demo(tmp_path / "two", size=32)
    with pytest.raises(ValueError, match="size must be"):
        demo.make_paired_demo(tmp_path / "bad", size=8)


def test_cli_demo(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        data_group, ["demo", str(tmp_path / "d"), "--size", "32", "--crops-per-photo", "1", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "edges2photo: train" in result.output and "val 1, test 1" in result.output
    assert len(list_images(tmp_path / "d" / "gray2color" / "val")) == 1
    assert "i2i data demo" in CliRunner().invoke(data_group, ["demo", "--help"]).output
