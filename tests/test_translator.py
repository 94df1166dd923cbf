"""The translator: any size, channels, bit depth, tiles, batches, precision, out-of-memory retries."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from i2i.checkpoint import GeneratorInfo
from i2i.inference.tiling import feather_weights, tile_starts
from i2i.inference.translator import Translator, usable_cores
from i2i.models import create_model


# ----------------------------------------------------------------------------- tiny generators
# (other test modules import these)


class PixelSR(nn.Module):
    """Nearest-neighbour upscaling as a network (a 3x3 conv + PixelShuffle), plus an optional random 3x3 conv.

    With ``mix=False`` the output is exactly the input repeated ``scale`` x ``scale``, so tests can
    check values, channel order and bit depth exactly.
    """

    def __init__(self, channels: int = 3, scale: int = 2, mix: bool = False) -> None:
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(channels, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        if not mix:
            with torch.no_grad():
                self.conv.weight.zero_()
                self.conv.bias.zero_()
                for out in range(channels * scale * scale):
                    self.conv.weight[out, out // (scale * scale), 1, 1] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def sr_info(scale: int = 2, channels: int = 3) -> GeneratorInfo:
    return GeneratorInfo(
        model="pixel_sr", kwargs={"in_channels": channels, "out_channels": channels},
        value_range=(0.0, 1.0), scale=scale, task="srgan",
    )


def tiny_sr(scale: int = 2, channels: int = 3, mix: bool = False, **options) -> Translator:
    torch.manual_seed(0)
    return Translator(PixelSR(channels, scale, mix), sr_info(scale, channels), device="cpu", **options)


def tiny_resnet(in_channels: int = 3, out_channels: int = 3, **options) -> Translator:
    """A fully convolutional ResNet generator (batch norm in eval mode, random statistics)."""
    torch.manual_seed(0)
    kwargs = dict(in_channels=in_channels, out_channels=out_channels, base_channels=4, num_blocks=2, norm="batch")
    model = create_model("resnet", **kwargs)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return Translator(model, GeneratorInfo(model="resnet", kwargs=kwargs), device="cpu", **options)


class Spy(nn.Module):
    """Wraps a model and records the shape of every batch it sees."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.size_multiple = getattr(inner, "size_multiple", 1)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.inner(x)


def photo(height: int, width: int, channels: int = 3, dtype=np.uint8) -> np.ndarray:
    """A crop of a real photo (scikit-image's astronaut) at the given size."""
    from skimage import data

    image = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    if channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]
    if dtype == np.uint16:
        image = image.astype(np.uint16) * 257 + np.arange(image.size, dtype=np.uint16).reshape(image.shape) % 257
    return np.ascontiguousarray(image)


# ----------------------------------------------------------------------------- size


@pytest.mark.parametrize("size", [(37, 53), (1, 1), (3, 130), (64, 64)])
def test_any_size_gives_the_input_size_back(size):
    out = tiny_resnet(tile=0).translate_image(photo(*size))
    assert out.shape == (*size, 3) and out.dtype == np.uint8


def test_unet_pads_to_its_multiple_and_crops_back():
    kwargs = dict(num_downs=5, base_channels=4, norm="batch")
    translator = Translator(create_model("unet", **kwargs), GeneratorInfo(model="unet", kwargs=kwargs))
    assert translator.size_multiple == 32
    assert translator.translate_image(photo(45, 70)).shape == (45, 70, 3)


@pytest.mark.parametrize("size", [(1, 1), (17, 30), (31, 9)])
def test_sr_output_is_exactly_scale_times_the_input(size):
    image = photo(*size)
    for scale in (2, 3):
        out = tiny_sr(scale).translate_image(image)
        assert out.shape == (size[0] * scale, size[1] * scale, 3)
        assert np.array_equal(out[::scale, ::scale], image)  # nearest upscaling, value for value


def test_a_generator_whose_scale_is_wrong_is_reported():
    translator = Translator(PixelSR(scale=2), sr_info(scale=4))
    with pytest.raises(ValueError, match="scale 4"):
        translator.translate_image(photo(8, 8))


def test_bad_arrays_and_options_are_refused():
    with pytest.raises(ValueError, match="uint8 or uint16"):
        tiny_sr().translate_image(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="overlap"):
        tiny_sr(tile=32, tile_overlap=20)
    with pytest.raises(ValueError, match="precision"):
        tiny_sr(precision="fp8")


# ----------------------------------------------------------------------------- channels and depth


def test_one_channel_generator_gives_gray_for_gray_and_for_colour_input():
    translator = tiny_resnet(in_channels=1, out_channels=1)
    assert translator.translate_image(photo(20, 30, channels=1)).shape == (20, 30, 1)
    assert translator.translate_image(photo(20, 30)).shape == (20, 30, 1)  # RGB is converted to luma


def test_gray_image_into_a_colour_upscaler_comes_back_gray():
    # Gray in, gray out for upscalers, as Real-ESRGAN does (it used to come back as 3 channels).
    gray = photo(10, 12, channels=1)
    out = tiny_sr().translate_image(gray)
    assert out.shape == (20, 24, 1)
    assert np.array_equal(out[::2, ::2, 0], gray[:, :, 0])
    for dtype in (np.uint8, np.uint16):
        image = photo(10, 12, channels=1, dtype=dtype)
        assert tiny_sr().translate_image(image).dtype == dtype


def test_gray_image_into_a_colour_translator_is_coloured():
    out = tiny_resnet().translate_image(photo(20, 28, channels=1))
    assert out.shape == (20, 28, 3)  # a gray -> colour translator colours it


def test_outscale_resizes_after_the_network_with_lanczos():
    image = photo(10, 12)
    network_output = tiny_sr(scale=2).translate_image(image)
    out = tiny_sr(scale=2, outscale=1.5).translate_image(image)
    assert out.shape == (15, 18, 3)
    expected = cv2.resize(network_output, (18, 15), interpolation=cv2.INTER_LANCZOS4)
    assert np.array_equal(out, expected)
    assert tiny_sr(scale=2, outscale=2.0).translate_image(image).shape == (20, 24, 3)
    assert tiny_sr(scale=2, outscale=0.75).output_size(10, 13) == (7, 9)  # truncated, as Real-ESRGAN does
    with pytest.raises(ValueError, match="--outscale"):
        tiny_sr(outscale=0)


def test_alpha_through_the_model_or_bilinear():
    rgba = np.concatenate([photo(10, 12), photo(10, 12, channels=1)[:, :, ::-1]], axis=2)
    rgba[:, :, 3] = np.linspace(0, 255, 12, dtype=np.uint8)[None, :]
    bilinear = tiny_sr(mix=True).translate_image(rgba)
    by_model = tiny_sr(mix=True, alpha="model").translate_image(rgba)
    assert bilinear.shape == by_model.shape == (20, 24, 4)
    assert np.array_equal(bilinear[..., :3], by_model[..., :3])  # the colour part is the same
    # The model's alpha is what the network makes of the alpha plane as a gray image.
    alpha_alone = tiny_sr(mix=True).translate_image(np.repeat(rgba[:, :, 3:], 3, axis=2))
    expected = cv2.cvtColor(alpha_alone, cv2.COLOR_RGB2GRAY)
    assert np.array_equal(by_model[..., 3], expected)
    assert not np.array_equal(by_model[..., 3], bilinear[..., 3])
    with pytest.raises(ValueError, match="--alpha model needs an upscaling model"):
        tiny_resnet(alpha="model")


def test_rgba_alpha_is_carried_through_and_resized_bilinearly_for_sr():
    rgba = np.concatenate([photo(21, 34), (np.random.default_rng(0).random((21, 34, 1)) * 255).astype(np.uint8)], axis=2)
    same = tiny_resnet().translate_image(rgba)
    assert same.shape == (21, 34, 4) and np.array_equal(same[..., 3], rgba[..., 3])
    up = tiny_sr().translate_image(rgba)
    assert up.shape == (42, 68, 4)
    assert np.array_equal(up[..., :3][::2, ::2], rgba[..., :3])
    assert np.array_equal(up[..., 3], cv2.resize(rgba[..., 3], (68, 42), interpolation=cv2.INTER_LINEAR))


def test_sixteen_bit_images_keep_all_sixteen_bits():
    image = photo(15, 22, dtype=np.uint16)
    assert np.any(image % 257)  # values that an 8-bit round trip would lose
    out = tiny_sr().translate_image(image)
    assert out.dtype == np.uint16
    assert np.array_equal(out[::2, ::2], image)
    assert tiny_resnet().translate_image(image).dtype == np.uint16


def test_pure_red_stays_red_and_reaches_the_network_as_channel_0(tmp_path):
    from i2i.data.io import read_image, write_image
    from i2i.inference.folder import translate_path

    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    write_image(tmp_path / "red.png", red)
    spy = Spy(PixelSR())
    seen = []
    spy.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].mean(dim=(0, 2, 3))))
    translate_path(Translator(spy, sr_info()), tmp_path / "red.png", tmp_path / "out" / "red.png", progress=False)
    assert seen[0].tolist() == pytest.approx([1.0, 0.0, 0.0])  # the network sees R first
    assert np.all(read_image(tmp_path / "out" / "red.png") == [255, 0, 0])
    assert np.all(cv2.imread(str(tmp_path / "out" / "red.png")) == [0, 0, 255])  # BGR on disk


# ----------------------------------------------------------------------------- tiles


def test_tile_starts_cover_the_image_on_the_size_grid():
    starts = tile_starts(200, 64, 16, multiple=4)
    assert starts[0] == 0 and starts[-1] == 200 - 64
    assert all(s % 4 == 0 for s in starts)
    assert all(b - a <= 64 - 16 for a, b in zip(starts, starts[1:]))
    assert tile_starts(50, 64, 16) == [0]


def test_feather_weights_of_neighbours_sum_to_one_and_ignore_tile_borders():
    left = feather_weights(1, 64, 32, top=False, bottom=False, left=False, right=True)[0]
    right = feather_weights(1, 64, 32, top=False, bottom=False, left=True, right=False)[0]
    total = left[32:] + right[:32]  # the 32 overlapping columns
    assert torch.allclose(total, torch.ones(32))
    assert left[-8:].max() == 0 and right[:8].max() == 0  # outer quarter of the overlap: weight 0
    assert left[:32].min() == 1  # the image border is not feathered


def test_tiled_equals_untiled_for_a_fully_convolutional_generator():
    # The ResNet generator is fully convolutional (batch norm in eval mode). A tile differs from the
    # whole image only within the generator's reach of the tile border (reflection padding instead
    # of real neighbours). Those outer pixels get weight 0 in the blend and the next ones a small
    # weight, so the blended result differs from the untiled one by at most one 8-bit level
    # (a rounding flip), and almost never.
    image = photo(150, 211)
    whole = tiny_resnet(tile=0).translate_image(image)
    for tile, overlap in [(64, 32), (96, 24)]:
        translator = tiny_resnet(tile=tile, tile_overlap=overlap, batch_size=4)
        spy = Spy(translator.model)
        translator.model = spy
        tiled = translator.translate_image(image)
        diff = np.abs(tiled.astype(int) - whole.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.01
        assert sum(s[0] for s in spy.shapes) > 4 and max(s[0] for s in spy.shapes) > 1  # several tiles, batched
        assert all(s[0] <= 4 and s[-2] <= tile and s[-1] <= tile for s in spy.shapes)  # only tiles on the device


def test_tiled_sr_matches_untiled_and_is_scale_times_the_input():
    image = photo(70, 45, dtype=np.uint16)
    whole = tiny_sr(mix=True, tile=0).translate_image(image)
    tiled = tiny_sr(mix=True, tile=32, tile_overlap=8).translate_image(image)
    assert tiled.shape == whole.shape == (140, 90, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1  # 1 of 65535


def test_automatic_tile_size_comes_from_the_memory_budget():
    image = photo(200, 180)
    roomy = tiny_resnet()
    spy = Spy(roomy.model)
    roomy.model = spy
    roomy.translate_image(image)
    assert spy.shapes == [(1, 3, 200, 180)]  # fits: one pass

    tight = tiny_resnet(memory_budget=int(64 * 64 * tiny_resnet().bytes_per_pixel()))
    spy = Spy(tight.model)
    tight.model = spy
    out = tight.translate_image(image)
    assert out.shape == (200, 180, 3) and len(spy.shapes) > 1
    assert max(s[-1] * s[-2] * s[0] for s in spy.shapes) <= 64 * 64


class FakeOOM(nn.Module):
    """Raises CUDA's out-of-memory error for batches larger than ``limit`` pixels."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit = inner, limit
        self.size_multiple = getattr(inner, "size_multiple", 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * x.shape[-2] * x.shape[-1] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")
        return self.inner(x)


def test_out_of_memory_lowers_batch_then_tile_and_retries():
    reference = tiny_resnet(tile=0)
    images = [photo(96, 96)] * 3
    expected = reference.translate_images(images)
    translator = tiny_resnet(tile=0, batch_size=4)
    translator.model = FakeOOM(translator.model, limit=60 * 60)
    with pytest.warns(RuntimeWarning, match="out of memory") as record:
        results = translator.translate_images(images)
    messages = " ".join(str(w.message) for w in record)
    assert "retrying with 1" in messages and "--tile" in messages
    for got, want in zip(results, expected):
        assert got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 1
    # The lowered tile size is kept: the next image needs no new warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        translator.translate_image(photo(96, 96))


def test_out_of_memory_at_the_smallest_tile_is_a_clear_error():
    translator = tiny_resnet(tile=64, tile_overlap=8)
    translator.model = FakeOOM(translator.model, limit=1)
    with pytest.warns(RuntimeWarning), pytest.raises(MemoryError, match="even with"):
        translator.translate_image(photo(100, 100))


# ----------------------------------------------------------------------------- batches and precision


def test_same_size_images_go_as_one_batch_and_match_single_results():
    translator = tiny_resnet(batch_size=4)
    spy = Spy(translator.model)
    translator.model = spy
    images = [photo(32, 40)] * 5 + [photo(20, 20)]
    results = translator.translate_images(images)
    assert sorted(s[0] for s in spy.shapes) == [1, 1, 4]
    single = tiny_resnet(batch_size=1)
    for image, result in zip(images, results):
        assert np.abs(single.translate_image(image).astype(int) - result.astype(int)).max() <= 1


class NanUnderAutocast(nn.Module):
    """Returns NaN when run under autocast, like an fp16 overflow; correct in fp32."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = PixelSR()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return y * float("nan") if torch.is_autocast_enabled(x.device.type) else y


def test_half_precision_nan_falls_back_to_fp32_with_a_warning():
    translator = Translator(NanUnderAutocast(), sr_info(), precision="bf16")
    image = photo(9, 11)
    with pytest.warns(RuntimeWarning, match="NaN or inf.*fp32"):
        out = translator.translate_image(image)
    assert np.array_equal(out[::2, ::2], image)
    assert translator.amp_dtype is None  # fp32 from now on


def test_cpu_defaults_fp32_all_cores_channels_last_and_optional_compile():
    translator = tiny_resnet()
    assert translator.amp_dtype is None and translator.channels_last and translator.batch_size == 1
    assert torch.get_num_threads() >= usable_cores()
    image = photo(30, 41)
    reference = translator.translate_image(image)
    for options in ({"channels_last": False}, {"compile": "eager"}):
        out = tiny_resnet(**options).translate_image(image)
        assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_batches_and_tiles_match_cpu_fp32():
    image = photo(150, 211)
    reference = tiny_resnet(tile=0).translate_image(image)
    gpu = tiny_resnet(tile=64, tile_overlap=32)
    gpu = gpu.to_device("cuda")
    assert gpu.amp_dtype == torch.float16 and gpu.channels_last
    out = gpu.translate_images([image, image])
    for result in out:
        assert np.abs(result.astype(int) - reference.astype(int)).max() <= 3  # fp16 rounding


def _gray_alpha_png(path, gray: np.ndarray, alpha: np.ndarray) -> None:
    """A gray + alpha PNG (colour type 4) of 8 or 16 bits, written byte by byte."""
    import struct
    import zlib

    depth = 16 if gray.dtype == np.uint16 else 8
    samples = np.stack([gray, alpha], axis=2).astype(">u2" if depth == 16 else np.uint8)
    rows = b"".join(b"\x00" + row.tobytes() for row in samples)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", gray.shape[1], gray.shape[0], depth, 4, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_with_alpha_into_a_colour_upscaler_comes_back_gray_with_alpha(tmp_path, dtype):
    # A gray + alpha file reads as RGBA with R = G = B; a colour-mixing network must not tint it.
    from i2i.data.io import read_image, write_image

    gray = photo(10, 12, channels=1, dtype=dtype)[:, :, 0]
    alpha = np.linspace(0, np.iinfo(dtype).max, gray.size).astype(dtype).reshape(gray.shape)
    _gray_alpha_png(tmp_path / "la.png", gray, alpha)
    image = read_image(tmp_path / "la.png")
    assert image.shape == (10, 12, 4) and image.dtype == dtype
    out = tiny_sr(mix=True).translate_image(image)
    assert out.shape == (20, 24, 4) and out.dtype == dtype
    assert np.array_equal(out[:, :, 0], out[:, :, 1]) and np.array_equal(out[:, :, 0], out[:, :, 2])
    assert np.abs(out[::2, ::2, 3].astype(int) - alpha.astype(int)).max() <= np.iinfo(dtype).max // 10
    colour = tiny_sr(mix=True).translate_image(np.concatenate([photo(10, 12, dtype=dtype), alpha[:, :, None]], axis=2))
    assert not np.array_equal(colour[:, :, 0], colour[:, :, 1])  # real colour stays colour
    write_image(tmp_path / "out.png", out)
    assert np.array_equal(read_image(tmp_path / "out.png"), out)
