"""Super-resolution building blocks: SRResNet, the VGG discriminator, MATLAB/OpenCV resizing,
perceptual and TV losses, SR data, and the published evaluation conventions."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from i2i.data.io import write_image
from i2i.data.resize import degrade, imresize, imresize_array, resize_weights
from i2i.data.sr import SRAugment, SRDataset, tile_positions
from i2i.evaluation import crop_border, evaluate_sr, format_report, psnr, rgb_to_y, sr_scores, ssim
from i2i.losses import (
    VGG19_WEIGHTS_FILE,
    PerceptualLoss,
    default_vgg19_weights_path,
    perceptual_loss,
    total_variation_loss,
    vgg19_features,
)
from i2i.models import create_model

BASICSR_LAYOUT = dict(
    norm="none", activation="leaky_relu", block_activation="relu", negative_slope=0.1, head_kernel=3,
    tail_kernel=3, body_conv=False, feature_skip=False, hr_conv=True, image_skip="bilinear",
)


# --- models ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_srresnet_upscales_by_its_scale(scale: int, norm: str) -> None:
    model = create_model("srresnet", scale=scale, base_channels=4, num_blocks=1, norm=norm).eval()
    assert model.scale == scale and model.size_multiple == 1 and model.value_range == (0.0, 1.0)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 5, 7))
    assert out.shape == (2, 3, 5 * scale, 7 * scale)
    stages = [m for m in model.modules() if isinstance(m, torch.nn.PixelShuffle)]
    assert [s.upscale_factor for s in stages] == ([3] if scale == 3 else [2] * int(math.log2(scale)))


def test_srresnet_rejects_unsupported_scales_and_norms() -> None:
    with pytest.raises(ValueError, match="2, 3, 4, 8"):
        create_model("srresnet", scale=5)
    with pytest.raises(ValueError, match="'batch' or 'none'"):
        create_model("srresnet", norm="instance")
    with pytest.raises(ValueError, match="in_channels"):
        create_model("srresnet", in_channels=1, out_channels=3, image_skip="bilinear")


def _zero_weights(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("act.weight"):  # PReLU slopes stay
                p.zero_()
    return model.eval()


def test_basicsr_layout_adds_the_bilinear_input() -> None:
    # With every conv zeroed the network's branch is 0, so the output is the bilinear upscale.
    model = _zero_weights(create_model("srresnet", scale=4, base_channels=4, num_blocks=2, **BASICSR_LAYOUT))
    x = torch.rand(1, 3, 6, 5)
    expected = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-6)
    # The residual blocks use ReLU inside, LeakyReLU(0.1) elsewhere, as BasicSR's MSRResNet.
    assert isinstance(model.blocks[0].act, torch.nn.ReLU)
    assert isinstance(model.head.act, torch.nn.LeakyReLU) and model.head.act.negative_slope == 0.1
    assert model.body_conv is None and model.hr_conv is not None


def test_tanh_output_lands_in_unit_range() -> None:
    model = _zero_weights(create_model("srresnet", scale=2, base_channels=4, num_blocks=1, output_activation="tanh"))
    with torch.no_grad():
        assert torch.allclose(model(torch.rand(1, 3, 4, 4)), torch.full((1, 3, 8, 8), 0.5))


def test_vgg_discriminator_sizes() -> None:
    paper = create_model("vgg_discriminator", base_channels=4)
    assert paper(torch.rand(2, 3, 96, 96)).shape == (2, 1)
    with pytest.raises(ValueError, match="96x96"):
        paper(torch.rand(1, 3, 64, 64))
    pooled = create_model("vgg_discriminator", base_channels=4, input_size=0)
    assert pooled(torch.rand(2, 3, 40, 56)).shape == (2, 1)
    strides = [block.conv.stride[0] for block in paper.blocks]
    assert strides == [1, 2] * 4


# --- resizing ----------------------------------------------------------------------------------


def test_matlab_bicubic_weights_by_hand() -> None:
    # Halving 4 pixels: the kernel is stretched x2 (antialiasing) and the border mirrored.
    # Output 1 sits at 1.5; taps at distances 0.25, 0.75, 1.25, 1.75 weigh cubic(d/2)/2, normalised:
    # 0.4336, 0.1133, -0.0352, -0.0117 per side; mirroring folds them onto pixels 1..4.
    weights = resize_weights(4, 2, "bicubic")
    assert weights[0].tolist() == pytest.approx([0.546875, 0.3984375, 0.1015625, -0.046875])
    assert weights[1].tolist() == pytest.approx([-0.046875, 0.1015625, 0.3984375, 0.546875])
    # Upscaling x4 uses the plain kernel: output 1 sits at 0.625 (pixel 1 and its mirror).
    assert resize_weights(2, 8, "bicubic")[0].tolist() == pytest.approx([1.1171875, -0.1171875])


@pytest.mark.parametrize("method", ["bicubic", "area", "opencv_cubic"])
def test_constant_images_stay_constant(method: str) -> None:
    x = torch.full((2, 3, 24, 20), 0.3, dtype=torch.float64)
    assert torch.allclose(imresize(x, scale=0.25, method=method), torch.full((2, 3, 6, 5), 0.3, dtype=torch.float64))
    if method != "area":
        assert torch.allclose(imresize(x, scale=3, method=method), torch.full((2, 3, 72, 60), 0.3, dtype=torch.float64))


@pytest.mark.parametrize(
    ("method", "flag", "size"),
    [
        ("opencv_cubic", cv2.INTER_CUBIC, (9, 12)),
        ("opencv_cubic", cv2.INTER_CUBIC, (12, 13)),
        ("opencv_cubic", cv2.INTER_CUBIC, (74, 100)),
        ("area", cv2.INTER_AREA, (9, 12)),  # an integer factor
        ("area", cv2.INTER_AREA, (12, 13)),  # fractional factors: partial pixel overlaps
    ],
)
def test_opencv_methods_match_opencv(method: str, flag: int, size: tuple[int, int]) -> None:
    image = np.random.default_rng(0).random((37, 50, 3)).astype(np.float32)
    expected = cv2.resize(image, (size[1], size[0]), interpolation=flag)
    out = imresize(torch.from_numpy(image.transpose(2, 0, 1)), size=size, method=method)
    assert np.abs(out.numpy().transpose(1, 2, 0) - expected).max() < 1e-5


def test_bicubic_downscale_antialiases() -> None:
    # Stripes at 0.4 cycles/pixel cannot survive a x4 reduction (new Nyquist: 0.125): antialiased
    # bicubic nearly removes them, OpenCV's cubic (no antialiasing) aliases them into a pattern.
    row = 0.5 + 0.5 * torch.sin(2 * math.pi * 0.4 * torch.arange(64, dtype=torch.float64))
    stripes = row.expand(64, 64)[None, None]
    matlab = imresize(stripes, scale=0.25, method="bicubic")
    opencv = imresize(stripes, scale=0.25, method="opencv_cubic")
    assert matlab.std() < 0.02 and opencv.std() > 0.15


def test_imresize_array_rounds_like_matlab() -> None:
    image = np.random.default_rng(1).integers(0, 256, (13, 18, 3), dtype=np.uint8)
    small = imresize_array(image, scale=0.25)
    assert small.dtype == np.uint8 and small.shape == (4, 5, 3)  # ceil(13/4), ceil(18/4)
    gray = imresize_array(image[:, :, 0], scale=2)
    assert gray.shape == (26, 36)
    exact = imresize(torch.from_numpy(image[:, :, 0]).double(), scale=2)
    assert np.array_equal(gray, exact.round().clamp(0, 255).numpy().astype(np.uint8))


def test_degrade_is_batched_quantized_and_checked() -> None:
    hr = torch.rand(3, 3, 16, 24)
    lr = degrade(hr, 4)
    assert lr.shape == (3, 3, 4, 6) and lr.min() >= 0 and lr.max() <= 1
    assert torch.allclose(lr * 255, (lr * 255).round(), atol=1e-4)
    assert torch.allclose(lr[1:2], degrade(hr[1:2], 4))
    assert not torch.allclose(degrade(hr, 4, "area"), lr)
    with pytest.raises(ValueError, match="multiple of the scale"):
        degrade(torch.rand(1, 3, 10, 12), 4)


# --- losses ------------------------------------------------------------------------------------


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_perceptual_loss_with_an_injected_network() -> None:
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
    loss = PerceptualLoss(network, criterion="mse")
    assert not any(p.requires_grad for p in network.parameters())
    target = torch.rand(2, 3, 12, 12)
    assert loss(target, target).item() == 0.0
    pred = torch.rand(2, 3, 12, 12, requires_grad=True)
    value = loss(pred, target)
    assert value.item() > 0 and value.dtype == torch.float32
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in network.parameters())
    # ImageNet normalisation: with identity features, L1 is |pred - target| / std per channel.
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = ((pred - target).abs() / std).mean()
    assert perceptual_loss(pred, target, _Identity(), criterion="l1").item() == pytest.approx(expected.item(), rel=1e-5)
    # Gray images are repeated to three channels.
    assert loss(target[:, :1], target[:, :1] * 0.5).item() > 0


def test_missing_vgg_weights_say_which_file_goes_where(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    expected = tmp_path / "torch_home" / "hub" / "checkpoints" / VGG19_WEIGHTS_FILE
    assert default_vgg19_weights_path() == expected
    with pytest.raises(FileNotFoundError) as info:
        PerceptualLoss()
    message = str(info.value)
    assert str(expected) in message and "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert "task.vgg_weights" in message
    with pytest.raises(FileNotFoundError, match="elsewhere.pth"):
        vgg19_features(weights=tmp_path / "elsewhere.pth")


def test_vgg19_features_read_torchvision_keys(tmp_path: Path) -> None:
    torch.manual_seed(0)
    w0, b0, w2, b2 = torch.randn(64, 3, 3, 3), torch.randn(64), torch.randn(64, 64, 3, 3) * 0.05, torch.randn(64)
    path = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": w0, "features.0.bias": b0, "features.2.weight": w2, "features.2.bias": b2}, path)
    features = vgg19_features("conv1_2", weights=path)
    assert len(features) == 3 and not features.training
    x = torch.rand(1, 3, 8, 8)
    expected = F.conv2d(F.relu(F.conv2d(x, w0, b0, padding=1)), w2, b2, padding=1)
    assert torch.allclose(features(x), expected, atol=1e-5)
    with pytest.raises(ValueError, match="features.5.weight"):
        vgg19_features("conv2_1", weights=path)
    with pytest.raises(ValueError, match="conv5_4"):
        vgg19_features("conv9_9", weights=path)


def test_total_variation_values() -> None:
    assert total_variation_loss(torch.full((1, 3, 5, 5), 0.7)).item() == 0.0
    board = torch.from_numpy(np.indices((6, 6)).sum(0) % 2).float()[None, None]
    assert total_variation_loss(board).item() == pytest.approx(2.0)
    ramp = torch.arange(5.0).expand(1, 1, 4, 5)  # +1 per column, constant down the rows
    assert total_variation_loss(ramp).item() == pytest.approx(1.0)


# --- data --------------------------------------------------------------------------------------


def test_tile_positions_cover_with_half_overlap() -> None:
    assert tile_positions(10, 4) == [0, 2, 4, 6]
    assert tile_positions(11, 4) == [0, 2, 4, 6, 7]
    assert tile_positions(3, 4) == []


def _blocky_pairs(root: Path, scale: int = 4) -> None:
    """LR images and HR images that are their nearest upscale, in root/LR|HR/<split>."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 1)):
        for i in range(count):
            lr = rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)
            hr = np.repeat(np.repeat(lr, scale, 0), scale, 1)
            write_image(root / "LR" / split / f"img{i}x{scale}.png", lr)
            write_image(root / "HR" / split / f"img{i}.png", hr)


def test_paired_tiles_crops_flips_and_rotations_stay_aligned(tmp_path: Path) -> None:
    _blocky_pairs(tmp_path)
    data = SRDataset(tmp_path, "train", scale=4, tile_size=32)
    assert data.paired and len(data) == 2 * 2 + 2 * 2  # LR tiles of 8, step 4, on 10x12 and 11x12
    batch = [data[i] for i in range(8)]
    a, b = torch.stack([x["a"] for x in batch]), torch.stack([x["b"] for x in batch])
    assert a.shape == (8, 3, 8, 8) and b.shape == (8, 3, 32, 32)
    torch.manual_seed(0)
    augment = SRAugment(scale=4, crop_size=16)
    for _ in range(3):
        lr, hr = augment(a, b, paired=True)
        assert lr.shape == (8, 3, 4, 4) and hr.shape == (8, 3, 16, 16)
        assert torch.equal(F.interpolate(lr, scale_factor=4, mode="nearest"), hr)
    # The crops really move and the symmetries really happen.
    outputs = {augment(a, b, paired=True)[0][0].flatten()[:4].tolist().__repr__() for _ in range(12)}
    assert len(outputs) > 3
    val = SRDataset(tmp_path, "val", scale=4)
    assert val[0]["a"].shape == (3, 10, 12) and val[0]["b"].shape == (3, 40, 48)


def test_hr_only_data_make_lr_on_the_device(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    write_image(tmp_path / "train" / "photo.png", image)
    data = SRDataset(tmp_path, "train", scale=4, tile_size=32)
    assert not data.paired
    item = data[0]
    assert item["b"].shape == (3, 32, 32) and item["a"].shape == (3, 8, 8) and item["a"].abs().sum() == 0
    whole = SRDataset(tmp_path, "train", scale=4)[0]
    assert whole["b"].shape == (3, 48, 68)  # cropped to a multiple of the scale
    augment = SRAugment(scale=4, crop_size=16)
    hr = torch.stack([data[i]["b"] for i in range(4)])
    lr, hr_crop = augment(torch.zeros(4, 3, 8, 8), hr, paired=False)
    assert hr_crop.shape == (4, 3, 16, 16) and torch.equal(lr, degrade(hr_crop, 4))
    with pytest.raises(Exception, match="smaller than the HR tile"):
        SRDataset(tmp_path, "train", scale=4, tile_size=64)


def test_pairs_that_do_not_match_are_listed(tmp_path: Path) -> None:
    write_image(tmp_path / "LR" / "train" / "a.png", np.zeros((10, 10, 3), np.uint8))
    write_image(tmp_path / "HR" / "train" / "a.png", np.zeros((30, 40, 3), np.uint8))
    write_image(tmp_path / "HR" / "train" / "b.png", np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(Exception) as info:
        SRDataset(tmp_path, "train", scale=4)
    assert "a.png is 10x10" in str(info.value) and "b.png has no LR image" in str(info.value)


# --- evaluation conventions ----------------------------------------------------------------------


def test_y_channel_is_matlab_rgb2ycbcr() -> None:
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0]]], dtype=np.uint8)
    assert rgb_to_y(pixels)[0].tolist() == pytest.approx([16.0, 235.0, 16 + 65.481, 16 + 128.553])


def test_y_channel_psnr_of_a_known_pair() -> None:
    hr = np.full((40, 40, 3), 100, np.uint8)
    out = np.full((40, 40, 3), 110, np.uint8)
    # On Y a gray step of 10 levels is 10 * 219 / 255; on RGB it is 10.
    y_psnr, y_ssim = sr_scores(out, hr, border=4)
    assert y_psnr == pytest.approx(20 * math.log10(255 / (10 * 219 / 255)), abs=1e-9)
    rgb_psnr, _ = sr_scores(out, hr, border=4, y_channel=False)
    assert rgb_psnr == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)
    assert 0 < y_ssim < 1
    assert ssim(hr.astype(float), hr.astype(float)) == pytest.approx(1.0)


def test_border_crop_removes_border_errors() -> None:
    hr = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = hr.copy()
    out[:2] = 0  # damage inside the 4-pixel border only
    assert sr_scores(out, hr, border=4)[0] == math.inf
    assert sr_scores(out, hr, border=0)[0] < 30
    assert crop_border(hr, 4).shape == (24, 24, 3)
    assert psnr(hr, hr) == math.inf


def test_evaluate_reads_lr_files_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    write_image(tmp_path / "HR" / "one.png", hr)
    # An LR folder made exactly as the default (MATLAB bicubic) gives the same bicubic scores.
    write_image(tmp_path / "LR" / "onex4.png", imresize_array(hr, scale=0.25))
    made = evaluate_sr(None, tmp_path / "HR", scale=4)
    read = evaluate_sr(None, tmp_path / "HR", lr_dir=tmp_path / "LR", scale=4)
    assert made.images[0].bicubic_psnr == pytest.approx(read.images[0].bicubic_psnr)
    assert "mean" in format_report(read) and format_report(read, "csv").splitlines()[0].startswith("image,")
    write_image(tmp_path / "LR2" / "one.png", np.zeros((9, 12, 3), np.uint8))
    with pytest.raises(ValueError, match="should be 48x36"):
        evaluate_sr(None, tmp_path / "HR", lr_dir=tmp_path / "LR2", scale=4)
    with pytest.raises(ValueError, match="--scale"):
        evaluate_sr(None, tmp_path / "HR")
