"""ICC profiles and EXIF carried from inputs into outputs (JPEG, PNG, WebP; the profile into TIFF)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from i2i.data.io import ImageMetadata, read_image, read_metadata, write_image
from i2i.data.metadata import reset_orientation
from i2i.inference.folder import translate_path
from test_translator import photo, tiny_sr

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # orientation
    exif[0x010F] = "i2i test camera"  # make
    exif[0x0131] = "carried"  # software
    return exif.tobytes()


def photo_file(path, orientation: int = 6) -> np.ndarray:
    """A real photo saved with Pillow, with an sRGB profile and EXIF (orientation ``orientation``)."""
    image = photo(12, 20)
    kwargs = {"quality": 95} if path.suffix == ".jpg" else {}
    Image.fromarray(image).save(path, icc_profile=SRGB, exif=exif_with(orientation), **kwargs)
    return image


def carried(path) -> tuple[bytes | None, Image.Exif]:
    with Image.open(path) as image:
        return image.info.get("icc_profile"), image.getexif()


@pytest.mark.parametrize("source", [".jpg", ".png", ".webp"])
@pytest.mark.parametrize("target", [".jpg", ".png", ".webp"])
def test_profile_and_exif_reach_the_output_with_orientation_reset(tmp_path, source, target):
    src = tmp_path / "in" / f"a{source}"
    src.parent.mkdir()
    photo_file(src, orientation=6)
    assert read_image(src).shape == (20, 12, 3)  # read upright: turned 90 degrees
    report = translate_path(tiny_sr(), src.parent, tmp_path / "out", ext=target, progress=False)
    assert not report.failed
    out = tmp_path / "out" / f"a{target}"
    icc, exif = carried(out)
    assert icc == SRGB
    assert exif.get(0x010F) == "i2i test camera" and exif.get(0x0131) == "carried"
    assert exif.get(0x0112) == 1  # the pixels are upright already; a viewer must not turn them again
    assert read_image(out).shape == (40, 24, 3)  # and i2i reads it back upright, not turned twice


def test_the_pixels_and_bit_depth_are_exactly_those_written_without_metadata(tmp_path):
    metadata = ImageMetadata(SRGB, reset_orientation(exif_with(8)[6:]))
    for name, image in [("a.png", photo(9, 11, dtype=np.uint16)), ("b.jpg", photo(9, 11)), ("c.webp", photo(9, 11)),
                        ("d.tif", photo(9, 11, dtype=np.uint16)), ("e.webp", np.dstack([photo(9, 11), photo(9, 11, 1)]))]:
        write_image(tmp_path / "plain" / name, image, quality=90)
        write_image(tmp_path / "meta" / name, image, quality=90, metadata=metadata)
        np.testing.assert_array_equal(read_image(tmp_path / "meta" / name), read_image(tmp_path / "plain" / name))
        assert carried(tmp_path / "meta" / name)[0] == SRGB, name
        assert read_metadata(tmp_path / "meta" / name).icc_profile == SRGB
    with Image.open(tmp_path / "meta" / "a.png") as png:
        assert png.mode == "I;16" or png.mode.startswith("RGB")
        png.load()  # the whole file decodes: the chunks were inserted correctly


def test_a_profile_of_another_colour_space_is_left_out(tmp_path):
    gray_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # not RGB
    write_image(tmp_path / "a.png", photo(5, 5), metadata=ImageMetadata(gray_profile, None))
    assert carried(tmp_path / "a.png")[0] is None
    write_image(tmp_path / "g.png", photo(5, 5, channels=1), metadata=ImageMetadata(SRGB, None))
    assert carried(tmp_path / "g.png")[0] is None  # an RGB profile on a gray image would be wrong


def test_files_without_metadata_and_broken_files_give_none(tmp_path):
    write_image(tmp_path / "plain.png", photo(5, 5))
    assert not read_metadata(tmp_path / "plain.png")
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8 not really")
    assert read_metadata(tmp_path / "junk.jpg") == ImageMetadata()
    buffer = io.BytesIO()
    Image.fromarray(photo(5, 5)).save(buffer, "BMP")
    (tmp_path / "a.bmp").write_bytes(buffer.getvalue())
    write_image(tmp_path / "b.bmp", photo(5, 5), metadata=ImageMetadata(SRGB, None))  # BMP holds none: no error
    assert read_image(tmp_path / "b.bmp").shape == (5, 5, 3)
