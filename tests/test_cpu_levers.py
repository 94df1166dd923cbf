"""CPU speed levers: the memory format switch, and bf16 where the CPU computes it natively."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from i2i.inference.translator import Translator
from test_translator import PixelSR, photo, sr_info


class FormatSpy(nn.Module):
    """Records whether the input and the conv weight are channels-last at every forward pass."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inner = PixelSR(3, 2, mix=True)
        self.seen: list[tuple[bool, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.inner.conv.weight
        self.seen.append((
            x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(),
            x.is_contiguous(),
            weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous(),
        ))
        return self.inner(x)


@pytest.mark.parametrize("tile", [0, 16])  # whole images and tiles reach the model the same way
def test_channels_last_switch_sets_the_format_of_weights_and_input(tile):
    image = photo(24, 20)
    outputs = {}
    for channels_last in (True, False):
        spy = FormatSpy()
        translator = Translator(spy, sr_info(2), device="cpu", channels_last=channels_last, tile=tile, tile_overlap=4)
        outputs[channels_last] = translator.translate_image(image)
        assert spy.seen
        for input_nhwc, input_nchw, weight_nhwc in spy.seen:
            assert input_nhwc == channels_last and input_nchw == (not channels_last)
            assert weight_nhwc == channels_last
    assert np.abs(outputs[True].astype(int) - outputs[False].astype(int)).max() <= 1


def test_a_channels_last_model_is_turned_back_when_the_switch_is_off():
    spy = FormatSpy().to(memory_format=torch.channels_last)
    Translator(spy, sr_info(2), device="cpu", channels_last=False).translate_image(photo(9, 11))
    assert spy.seen and not any(weight_nhwc for _, _, weight_nhwc in spy.seen)


def test_cpu_features_reads_the_flags_torch_level_included():
    from i2i.device import cpu_features

    features = cpu_features()
    assert set(features) == {"avx512_bf16", "amx_bf16", "amx_tile", "capability"}
    assert features["capability"] == torch.backends.cpu.get_cpu_capability()
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return
    assert features["avx512_bf16"] == ("avx512_bf16" in flags) and features["amx_tile"] == ("amx_tile" in flags)


@pytest.mark.parametrize("switch, native, expected", [
    ("1", True, torch.bfloat16), ("1", False, None), ("", True, torch.bfloat16), ("0", True, None),
])
def test_auto_precision_on_the_cpu_is_bf16_where_native_unless_turned_off(monkeypatch, switch, native, expected):
    from i2i.inference import runner

    monkeypatch.setenv("I2I_CPU_BF16", switch)
    monkeypatch.setattr(runner, "_native_bf16", lambda: native)
    assert Translator(PixelSR(3, 2, mix=True), sr_info(2), device="cpu").amp_dtype == expected
    assert Translator(PixelSR(3, 2, mix=True), sr_info(2), device="cpu", precision="fp32").amp_dtype is None
    refusing = PixelSR(3, 2, mix=True)
    refusing.supports_bfloat16 = False  # e.g. a transformer that spandrel marks fp32-only
    assert Translator(refusing, sr_info(2), device="cpu").amp_dtype is None


def test_bf16_on_a_real_photo_stays_above_40_db(monkeypatch):
    from i2i.inference import runner

    monkeypatch.setenv("I2I_CPU_BF16", "1")
    monkeypatch.setattr(runner, "_native_bf16", lambda: True)
    image = photo(48, 40)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.PReLU(16), nn.Conv2d(16, 12, 3, padding=1),
                          nn.PixelShuffle(2))
    fast = Translator(model, sr_info(2), device="cpu").translate_image(image)
    exact = Translator(model, sr_info(2), device="cpu", precision="fp32").translate_image(image)
    mse = np.mean((fast.astype(np.float64) - exact.astype(np.float64)) ** 2)
    assert 0 < mse and 10 * np.log10(255.0**2 / mse) > 40  # bf16 ran (not identical) and is close
