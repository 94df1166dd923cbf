"""i2i.data.io: file formats, channel order, orientation, corruption, atomic writes, tensors."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from i2i.errors import DataError
from i2i.data.io import IMAGE_EXTENSIONS, ImageReadError, list_images, read_image, read_image_size, write_image
# Conversions between representations moved from data.io to the shared image-ops module.
from i2i.imageops import image_to_tensor, merge_alpha, split_alpha, tensor_to_image

RNG = np.random.default_rng(1234)


def _random(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return RNG.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


def _quadrants(height: int = 40, width: int = 60) -> np.ndarray:
    """Four flat colours, so orientation and channel order are unambiguous even after JPEG."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = (255, 0, 0)
    image[: height // 2, width // 2 :] = (0, 255, 0)
    image[height // 2 :, : width // 2] = (0, 0, 255)
    image[height // 2 :, width // 2 :] = (255, 255, 0)
    return image


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("extension", [".png", ".tif", ".bmp"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_lossless_uint8_round_trip(tmp_path: Path, extension: str, channels: int) -> None:
    image = _random((9, 13, channels), np.uint8)
    path = tmp_path / f"x{extension}"
    write_image(path, image)
    back = read_image(path)
    assert back.dtype == np.uint8 and back.shape == image.shape
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("extension", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_uint16_keeps_all_16_bits(tmp_path: Path, extension: str, channels: int) -> None:
    image = _random((7, 11, channels), np.uint16)
    image[0, 0] = 65535
    image[0, 1] = 1  # values below 256 would vanish if anything went through 8 bits
    path = tmp_path / f"deep{extension}"
    write_image(path, image)
    back = read_image(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, image)


def test_two_dimensional_gray_reads_as_hw1(tmp_path: Path) -> None:
    image = _random((5, 6), np.uint8)
    write_image(tmp_path / "g.png", image)
    back = read_image(tmp_path / "g.png")
    assert back.shape == (5, 6, 1)
    np.testing.assert_array_equal(back[:, :, 0], image)


def test_non_ascii_path(tmp_path: Path) -> None:
    image = _random((4, 4, 3), np.uint8)
    path = tmp_path / "données" / "画像.png"
    write_image(path, image)  # also creates the parent folder
    np.testing.assert_array_equal(read_image(path), image)


def test_channel_order_on_disk_is_bgr(tmp_path: Path) -> None:
    red = np.zeros((3, 4, 3), np.uint8)
    red[..., 0] = 255
    write_image(tmp_path / "red.png", red)
    on_disk = cv2.imread(str(tmp_path / "red.png"), cv2.IMREAD_UNCHANGED)
    assert tuple(on_disk[0, 0]) == (0, 0, 255)  # OpenCV's BGR
    assert tuple(read_image(tmp_path / "red.png")[0, 0]) == (255, 0, 0)  # RGB for everyone else


def test_rgba_channel_order_on_disk(tmp_path: Path) -> None:
    image = np.zeros((2, 2, 4), np.uint8)
    image[..., 0], image[..., 3] = 255, 77
    write_image(tmp_path / "a.png", image)
    assert tuple(cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)[0, 0]) == (0, 0, 255, 77)


def test_jpeg_quality_changes_size(tmp_path: Path) -> None:
    image = _random((64, 64, 3), np.uint8)
    write_image(tmp_path / "low.jpg", image, quality=20)
    write_image(tmp_path / "high.jpg", image, quality=95)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size
    assert read_image(tmp_path / "low.jpg").shape == (64, 64, 3)


def test_webp_quality_and_alpha(tmp_path: Path) -> None:
    image = _random((32, 32, 4), np.uint8)
    write_image(tmp_path / "a.webp", image, quality=30)
    back = read_image(tmp_path / "a.webp")
    assert back.shape == (32, 32, 4)


def test_jpeg_composites_alpha_over_white(tmp_path: Path) -> None:
    image = np.zeros((16, 16, 4), np.uint8)
    image[..., 0] = 255  # red ...
    image[:, :8, 3] = 0  # ... fully transparent on the left -> white
    image[:, 8:, 3] = 255  # ... opaque on the right -> red
    write_image(tmp_path / "flat.jpg", image, quality=100)
    back = read_image(tmp_path / "flat.jpg").astype(int)
    assert back.shape == (16, 16, 3)
    assert np.abs(back[4, 2] - (255, 255, 255)).max() <= 3
    assert np.abs(back[4, 13] - (255, 0, 0)).max() <= 3


@pytest.mark.parametrize("extension", [".jpg", ".bmp", ".webp"])
def test_sixteen_bit_is_scaled_for_8_bit_formats(tmp_path: Path, extension: str) -> None:
    image = np.full((8, 8, 3), 65535, np.uint16)
    image[:, 4:] = 257 * 100  # exactly 100 in 8 bits
    path = tmp_path / f"s{extension}"
    write_image(path, image, quality=100 if extension != ".bmp" else None)
    back = read_image(path)
    assert back.dtype == np.uint8
    assert abs(int(back[0, 0, 0]) - 255) <= 1 and abs(int(back[0, 7, 0]) - 100) <= 1


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.gif"):
        write_image(tmp_path / "x.gif", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(TypeError, match="tensor_to_image"):
        write_image(tmp_path / "x.png", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="merge_alpha"):
        write_image(tmp_path / "x.png", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="quality"):
        write_image(tmp_path / "x.jpg", np.zeros((2, 2, 3), np.uint8), quality=0)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    from PIL import Image, ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(_quadrants()).save(path, exif=exif.tobytes(), quality=95)

    ours = read_image(path)
    with Image.open(path) as pil_image:
        reference = np.asarray(ImageOps.exif_transpose(pil_image))
    assert ours.shape == reference.shape
    assert np.abs(ours.astype(int) - reference.astype(int)).mean() < 2.0
    assert read_image_size(path) == ours.shape[:2]


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_png_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    from PIL import Image, ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(_quadrants(40, 60)).save(path, exif=exif.tobytes())
    assert b"eXIf" in path.read_bytes()
    with Image.open(path) as pil_image:
        reference = np.asarray(ImageOps.exif_transpose(pil_image))
    assert np.array_equal(read_image(path), reference)  # PNG is lossless: exactly equal
    assert read_image_size(path) == reference.shape[:2]


def test_orientation_6_rotates_clockwise(tmp_path: Path) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_quadrants(40, 60)).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    image = read_image(tmp_path / "r.jpg").astype(int)
    assert image.shape == (60, 40, 3)
    # Rotating 90 degrees clockwise moves the bottom-left (blue) quadrant to the top-left.
    assert np.abs(image[5, 5] - (0, 0, 255)).max() < 30


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("deep", [False, True], ids=["rgb8", "gray16"])
def test_tiff_orientation_applied_exactly_once(tmp_path: Path, orientation: int, deep: bool) -> None:
    """OpenCV's TIFF decoder orients TIFFs itself; read_image must not rotate a second time."""
    from PIL import Image

    stored = (_quadrants()[..., :1].astype(np.uint16) * 200) if deep else _quadrants()
    path = tmp_path / f"o{orientation}.tif"
    Image.fromarray(stored[..., 0] if deep else stored).save(path, tiffinfo={0x0112: orientation})

    upright = {3: np.rot90(stored, 2), 6: np.rot90(stored, -1), 8: np.rot90(stored, 1)}[orientation]
    ours = read_image(path)
    np.testing.assert_array_equal(ours, upright)
    assert read_image_size(path) == ours.shape[:2]


# ----------------------------------------------------------------------------- broken files


def _encoded(extension: str) -> bytes:
    ok, buffer = cv2.imencode(extension, _random((48, 64, 3), np.uint8))
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize("extension", [".png", ".jpg"])
@pytest.mark.parametrize("keep", [0.5, 0.9, -2])
def test_truncated_file_raises_naming_it(tmp_path: Path, extension: str, keep: float) -> None:
    data = _encoded(extension)
    cut = len(data) + keep if keep < 0 else int(len(data) * keep)
    path = tmp_path / f"cut{extension}"
    path.write_bytes(data[: int(cut)])
    # "ends before" is the structural check's message: it runs before OpenCV gets a chance to
    # decode the readable part and return a partly grey image.
    with pytest.raises(ImageReadError, match="truncated .*ends before") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_jpeg_with_embedded_eoi_still_detected_as_truncated(tmp_path: Path) -> None:
    """An embedded thumbnail carries its own end-of-image marker; it must not hide truncation."""
    thumbnail = cv2.imencode(".jpg", _random((8, 8, 3), np.uint8))[1].tobytes()
    data = _encoded(".jpg")
    # An APP2 segment holding a whole JPEG puts an FFD9 marker early in the file, as EXIF
    # thumbnails (APP1) do.
    segment = b"\xff\xe2" + (len(thumbnail) + 2).to_bytes(2, "big") + thumbnail
    spliced = data[:2] + segment + data[2:]
    (tmp_path / "ok.jpg").write_bytes(spliced)
    assert read_image(tmp_path / "ok.jpg").shape == (48, 64, 3)
    (tmp_path / "cut.jpg").write_bytes(spliced[:-300])
    with pytest.raises(ImageReadError, match="ends before"):
        read_image(tmp_path / "cut.jpg")


@pytest.mark.parametrize(
    "params",
    [[cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 1], [cv2.IMWRITE_JPEG_QUALITY, 100]],
    ids=["progressive", "restart-markers", "q100"],
)
def test_valid_jpeg_variants_are_not_called_truncated(tmp_path: Path, params: list[int]) -> None:
    image = _random((40, 56, 3), np.uint8)
    ok, buffer = cv2.imencode(".jpg", image, params)
    assert ok
    (tmp_path / "v.jpg").write_bytes(buffer.tobytes())
    assert read_image(tmp_path / "v.jpg").shape == (40, 56, 3)


def test_trailing_bytes_after_end_marker_are_fine(tmp_path: Path) -> None:
    for extension in (".png", ".jpg"):
        path = tmp_path / f"trail{extension}"
        path.write_bytes(_encoded(extension) + b"\x00" * 16 + b"vendor trailer")
        assert read_image(path).shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "does not exist"), (b"", "empty"), (b"this is not an image at all", "not an image")],
)
def test_unreadable_files_raise_naming_the_file(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    assert "bad.png" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_float_tiff_is_refused_clearly(tmp_path: Path) -> None:
    ok, buffer = cv2.imencode(".tif", np.full((4, 4), 0.5, np.float32))
    assert ok
    (tmp_path / "f.tif").write_bytes(buffer.tobytes())
    with pytest.raises(ImageReadError, match="float32"):
        read_image(tmp_path / "f.tif")


def test_gray_alpha_reads_as_rgba(tmp_path: Path) -> None:
    from PIL import Image

    data = np.stack([np.full((3, 5), 100, np.uint8), np.full((3, 5), 50, np.uint8)], axis=2)
    Image.fromarray(data, "LA").save(tmp_path / "la.png")
    image = read_image(tmp_path / "la.png")
    assert image.shape == (3, 5, 4)
    assert tuple(image[0, 0]) == (100, 100, 100, 50)


# ----------------------------------------------------------------------------- atomic writes


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.png"
    write_image(path, _random((8, 8, 3), np.uint8))
    write_image(path, _random((8, 8, 3), np.uint8))  # replace in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.png"]
    # The temporary file is created 0600; the result must get the mode a plain open() gives.
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_encode_keeps_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.png"
    original = _random((8, 8, 3), np.uint8)
    write_image(path, original)

    def fail_replace(*args: object, **kwargs: object) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(OSError, match="simulated"):
        write_image(path, _random((8, 8, 3), np.uint8))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]
    np.testing.assert_array_equal(read_image(path), original)


# ----------------------------------------------------------------------------- alpha helpers


def test_split_and_merge_alpha_round_trip() -> None:
    image = _random((6, 7, 4), np.uint8)
    colour, alpha = split_alpha(image)
    assert colour.shape == (6, 7, 3) and alpha is not None and alpha.shape == (6, 7, 1)
    np.testing.assert_array_equal(merge_alpha(colour, alpha), image)
    rgb = _random((6, 7, 3), np.uint8)
    assert split_alpha(rgb)[1] is None and merge_alpha(rgb, None) is rgb


def test_merge_alpha_gray_dtype_and_resize() -> None:
    gray = _random((4, 4, 1), np.uint16)
    alpha = np.full((2, 2, 1), 255, np.uint8)
    with pytest.raises(ValueError, match="resize=True"):
        merge_alpha(gray, alpha)
    merged = merge_alpha(gray, alpha, resize=True)
    assert merged.shape == (4, 4, 4) and merged.dtype == np.uint16
    assert (merged[..., 3] == 65535).all()
    np.testing.assert_array_equal(merged[..., 1], gray[..., 0])


# ----------------------------------------------------------------------------- tensors


def test_image_to_tensor_ranges() -> None:
    image = np.array([[[0, 255, 51]]], np.uint8)
    tensor = image_to_tensor(image)
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 1, 1)
    torch.testing.assert_close(tensor.flatten(), torch.tensor([-1.0, 1.0, 51 / 255 * 2 - 1]))
    torch.testing.assert_close(image_to_tensor(image, (0.0, 1.0)).flatten(), torch.tensor([0.0, 1.0, 0.2]))
    deep = image_to_tensor(np.array([[65535, 0]], np.uint16), (0, 1))
    assert deep.shape == (1, 1, 2)
    torch.testing.assert_close(deep.flatten(), torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 1.0)])
def test_tensor_round_trip_is_exact(dtype: type, value_range: tuple[float, float]) -> None:
    image = _random((5, 9, 3), dtype)
    image[0, 0] = (0, np.iinfo(dtype).max, 1)
    back = tensor_to_image(image_to_tensor(image, value_range), value_range, dtype=dtype)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, image)


def test_tensor_to_image_rounds_and_clamps() -> None:
    levels = torch.tensor([0.0, 0.4, 0.6, 1.4, 2.6, -3.0, 300.0, float("nan")]) / 255.0
    tensor = levels.view(1, 1, 1, 8)  # (1, C, H, W) with a batch dimension
    out = tensor_to_image(tensor, (0.0, 1.0))
    assert out.shape == (1, 8, 1)
    assert out[0, :, 0].tolist() == [0, 0, 1, 1, 3, 0, 255, 0]  # truncation would give 0, 0, 0, 1, 2
    with pytest.raises(ValueError, match="batch of 2"):
        tensor_to_image(torch.zeros(2, 3, 4, 4))
    half = tensor_to_image(torch.ones(3, 2, 2, dtype=torch.float16))
    assert half.dtype == np.uint8 and (half == 255).all()


# ----------------------------------------------------------------------------- listing


def test_list_images_sorted_filtered_recursive(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "sub/c.webp", "sub/deeper/d.TIFF", "notes.txt", ".hidden.png",
                 ".cache/e.png", "sub/.x.png.123.tmp"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a.jpg", "b.PNG", "sub/c.webp", "sub/deeper/d.TIFF"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.jpg", "b.PNG"]
    # DataError (an I2IError) since the CLI reports exactly those as one line; it was FileNotFoundError.
    with pytest.raises(DataError, match="missing"):
        list_images(tmp_path / "missing")
    assert set(IMAGE_EXTENSIONS) >= {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
