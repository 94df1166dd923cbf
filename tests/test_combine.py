"""i2i.data.combine: pairing by relative stem, A|B layout, up-front error listing, format matching."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from i2i.cli_data import data_group
from i2i.data.combine import combine_folders, combine_pair
from i2i.data.io import read_image, write_image


def _solid(value: int, shape: tuple[int, ...] = (6, 5, 3), dtype: type = np.uint8) -> np.ndarray:
    return np.full(shape, value, dtype)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_pairs_by_relative_stem_and_mirrors_subfolders(tmp_path: Path) -> None:
    a, b, out = tmp_path / "A", tmp_path / "B", tmp_path / "out"
    write_image(a / "train" / "0001.jpg", _solid(40), quality=100)
    write_image(b / "train" / "0001.png", _solid(200))
    write_image(a / "val" / "x.png", _solid(10, (6, 5, 1)))  # gray A, colour B
    write_image(b / "val" / "x.png", _solid(250))

    written = combine_folders(a, b, out)

    assert written == [out / "train" / "0001.png", out / "val" / "x.png"]
    pair = read_image(out / "train" / "0001.png").astype(int)
    assert pair.shape == (6, 10, 3)
    assert np.abs(pair[:, :5] - 40).max() <= 2 and (pair[:, 5:] == 200).all()  # A left, B right
    gray_pair = read_image(out / "val" / "x.png")
    assert gray_pair.shape == (6, 10, 3)  # gray expanded to 3 channels
    assert (gray_pair[:, :5] == 10).all() and (gray_pair[:, 5:] == 250).all()
    assert _files(a) == ["train/0001.jpg", "val/x.png"] and _files(b) == ["train/0001.png", "val/x.png"]


def test_all_problems_listed_before_anything_is_written(tmp_path: Path) -> None:
    a, b, out = tmp_path / "A", tmp_path / "B", tmp_path / "out"
    write_image(a / "good.png", _solid(1))
    write_image(b / "good.png", _solid(2))
    write_image(a / "only_in_a.png", _solid(1))
    write_image(b / "sub" / "only_in_b.png", _solid(1))
    write_image(a / "big.png", _solid(1, (8, 5, 3)))
    write_image(b / "big.png", _solid(1, (6, 5, 3)))
    write_image(a / "twice.png", _solid(1))
    write_image(a / "twice.jpg", _solid(1))
    write_image(b / "twice.png", _solid(1))

    with pytest.raises(ValueError) as info:
        combine_folders(a, b, out)

    message = str(info.value)
    assert "4 problem(s), nothing was written" in message
    assert "only_in_a.png' has no match in B" in message
    assert "only_in_b.png' has no match in A" in message
    assert "size mismatch for 'big'" in message and "8x5" in message and "6x5" in message
    assert "several files for 'twice'" in message
    assert not out.exists()


def test_long_problem_lists_are_truncated_with_a_count(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(b / "z.png", _solid(1))
    for index in range(25):
        write_image(a / f"{index:02d}.png", _solid(1, (2, 2, 3)))
    with pytest.raises(ValueError, match=r"26 problem\(s\)") as info:
        combine_folders(a, b, tmp_path / "out")
    assert "... and 6 more" in str(info.value)
    assert str(info.value).count("has no match") == 20


def test_refuses_to_write_into_an_input_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(a / "1.png", _solid(1))
    write_image(b / "1.png", _solid(2))
    with pytest.raises(ValueError, match="inside an input folder"):
        combine_folders(a, b, a / "combined")
    assert _files(a) == ["1.png"]


def test_combine_pair_matches_depth_and_alpha() -> None:
    rgba8 = _solid(255, (2, 3, 4))
    gray16 = _solid(1000, (2, 3, 1), np.uint16)
    pair = combine_pair(gray16, rgba8)
    assert pair.shape == (2, 6, 4) and pair.dtype == np.uint16
    assert (pair[:, :3, :3] == 1000).all() and (pair[:, :3, 3] == 65535).all()  # opaque alpha added
    assert (pair[:, 3:] == 65535).all()  # 8-bit 255 widened to 16-bit 65535


def test_cli_combine_error_is_one_clean_message(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(a / "1.png", _solid(1))
    write_image(b / "2.png", _solid(2))
    result = CliRunner().invoke(data_group, ["combine", str(a), str(b), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "Error: cannot combine" in result.output and "1.png' has no match in B" in result.output
    assert "Traceback" not in result.output and result.exception is not None
    assert not (tmp_path / "out").exists()

    write_image(b / "1.png", _solid(2))
    (b / "2.png").unlink()
    result = CliRunner().invoke(data_group, ["combine", str(a), str(b), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "wrote 1 pair to" in result.output
