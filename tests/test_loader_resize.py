"""The paired/unpaired loaders resize as pytorch-CycleGAN-and-pix2pix's ``get_transform`` does:
Pillow's bicubic (antialiased when shrinking), ``__scale_width``'s floored height with its
crop_size minimum. Compared on real photos (scikit-image's data) with the reference's own calls.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as photos
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from i2i.data.datasets import PairedDataset, resize_for_preprocess, scale_width_size
from i2i.data.io import write_image


def reference_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The reference loader's resize: torchvision's ``Resize`` on a PIL image (= Pillow BICUBIC)."""
    pil = Image.fromarray(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    out = np.asarray(transforms.Resize([height, width], InterpolationMode.BICUBIC)(pil))
    return out.reshape(height, width, -1)


def reference_scale_width(image: np.ndarray, target: int, crop: int) -> np.ndarray:
    """The reference's ``__scale_width``, written out: floor of target*oh/ow, at least crop."""
    oh, ow = image.shape[:2]
    if ow == target and oh >= crop:
        return image
    return reference_resize(image, target, int(max(target * oh / ow, crop)))


def max_level_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


@pytest.mark.parametrize(
    "name, crop",
    [
        ("coffee", None),  # 600x400 -> 286x286: shrinking, where OpenCV's cubic aliases
        ("astronaut", 256),  # a 256x256 cut -> 286x286: the usual pix2pix enlargement
        ("camera", None),  # 8-bit gray
    ],
)
def test_resize_and_crop_matches_the_reference_on_photos(name: str, crop: int | None) -> None:
    image = getattr(photos, name)()
    image = image[:, :, None] if image.ndim == 2 else image
    if crop:
        image = np.ascontiguousarray(image[100 : 100 + crop, 120 : 120 + crop])
    ours = resize_for_preprocess(image, "resize_and_crop", 286, 256)
    assert ours.shape == (286, 286, image.shape[2]) and ours.dtype == np.uint8
    assert max_level_difference(ours, reference_resize(image, 286, 286)) <= 1


@pytest.mark.parametrize("size", [286, 700])
def test_16_bit_images_keep_their_depth_and_match_within_one_8_bit_level(size: int) -> None:
    image8 = photos.coffee()
    image16 = image8.astype(np.uint16) * 257
    ours = resize_for_preprocess(image16, "resize_and_crop", size, 256)
    assert ours.dtype == np.uint16
    # Finer than 8-bit: not every value is a multiple of 257.
    assert np.any(ours % 257)
    as_8_bit = np.rint(ours / 257.0).astype(np.uint8)
    assert max_level_difference(as_8_bit, reference_resize(image8, size, size)) <= 1


def test_scale_width_floors_the_height_and_keeps_the_crop_minimum() -> None:
    coffee = photos.coffee()  # 600 wide, 400 high: 286 * 400 / 600 = 190.67
    assert scale_width_size(600, 400, 286, 128) == (286, 190)
    for mode in ("scale_width", "scale_width_and_crop"):
        ours = resize_for_preprocess(coffee, mode, 286, 128)
        assert ours.shape[:2] == (190, 286)
        assert max_level_difference(ours, reference_scale_width(coffee, 286, 128)) <= 1
    chelsea = photos.chelsea()  # 451 x 300 -> 190.24 high, raised to the crop size in both modes
    for mode in ("scale_width", "scale_width_and_crop"):
        ours = resize_for_preprocess(chelsea, mode, 286, 256)
        assert ours.shape[:2] == (256, 286)
        assert max_level_difference(ours, reference_scale_width(chelsea, 286, 256)) <= 1
    already = np.ascontiguousarray(coffee[:300, :286])
    assert resize_for_preprocess(already, "scale_width", 286, 256) is already


def test_paired_dataset_items_equal_the_reference_pipeline(tmp_path: Path) -> None:
    coffee = photos.coffee()
    for side, image in (("A", coffee), ("B", coffee[:, ::-1])):
        folder = tmp_path / side / "train"
        folder.mkdir(parents=True)
        write_image(folder / "cup.png", np.ascontiguousarray(image))
    dataset = PairedDataset(tmp_path, "train", preprocess="resize_and_crop", load_size=286, crop_size=256)
    item = dataset[0]
    reference = transforms.Compose(
        [
            transforms.Resize([286, 286], InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )(Image.fromarray(coffee))
    assert item["a"].shape == (3, 286, 286)
    assert torch.allclose(item["a"], reference, atol=1.0 / 127.5 + 1e-6)
