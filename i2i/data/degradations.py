"""Real-ESRGAN's two-order degradation model (Wang et al., ICCVW 2021), batched on the training device.

A ground-truth batch ``gt`` (B, 3, H, W) in ``[0, 1]`` becomes a low-quality batch at ``1/scale``
size through two rounds of blur -> random resize -> noise -> JPEG, then the final
"resize back + sinc filter" and a last JPEG in random order, exactly the stages and probabilities
of Real-ESRGAN's ``RealESRGANModel.feed_data`` (defaults from ``train_realesrgan_x4plus.yml``).

Where the work runs:

- on the CPU, from numpy's global generator: the blur kernels (one per image and stage, see
  :mod:`i2i.data.kernels`) and every scalar choice (resize scale and mode, noise type, gray or
  colour, noise strength, JPEG quality, crop position);
- on the batch's device: all filtering (``kornia.filters.filter2d`` with per-image kernels),
  resizing (``torch.nn.functional.interpolate``), Gaussian and Poisson noise (torch's generator of
  that device), JPEG (``kornia.enhance.jpeg_codec_differentiable`` with a per-image quality) and the
  unsharp mask (two matrix products per axis, see :func:`usm_sharpen`).

Per image: the kernels, whether the second blur happens, whether the final sinc happens, the noise
type (Gaussian or Poisson), gray or colour noise, the noise strength and the JPEG quality. Per
batch, as in Real-ESRGAN (one tensor must keep one size): each resize's scale and mode and the
order of the final sinc and JPEG. :class:`TrainingPairPool` then mixes these across batches.

The trainer seeds torch's, numpy's and Python's generators and checkpoints their states, so a
resumed run degrades the next batch exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence, Union

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from i2i.data.kernels import (
    DEFAULT_KERNEL_PROB,
    KERNEL_TYPES,
    filter_per_image,
    pad_kernel,
    pulse_kernel,
    random_kernel,
    random_kernel_size,
    sinc_kernel,
    trim_kernels,
    usm_sharpen,
)
from i2i.errors import ConfigError, DataError

__all__ = [
    "DegradationConfig",
    "DegradationOrder",
    "Degrader",
    "TrainingPairPool",
    "usm_sharpen",
    "filter_per_image",
    "add_gaussian_noise",
    "add_poisson_noise",
    "jpeg",
    "quantize_8bit",
    "RESIZE_MODES",
]

#: The interpolation modes a random resize picks from, with equal odds (as Real-ESRGAN).
RESIZE_MODES = ("area", "bilinear", "bicubic")


@dataclass(frozen=True)
class DegradationOrder:
    """The settings of one order (blur, resize, noise, JPEG), as :meth:`DegradationConfig.order` reads them."""

    kernel_size: int
    kernel_list: tuple[str, ...]
    kernel_prob: tuple[float, ...]
    sinc_prob: float
    blur_sigma: tuple[float, float]
    betag_range: tuple[float, float]
    betap_range: tuple[float, float]
    resize_prob: tuple[float, float, float]
    resize_range: tuple[float, float]
    gaussian_noise_prob: float
    noise_range: tuple[float, float]
    poisson_scale_range: tuple[float, float]
    gray_noise_prob: float
    jpeg_range: tuple[float, float]


_ORDER_SOURCES = {f.name: ("blur_kernel_size" if f.name == "kernel_size" else f.name) for f in dataclasses.fields(DegradationOrder)}


@dataclass(frozen=True)
class DegradationConfig:
    """Every probability and range of the two-order model, with train_realesrgan_x4plus.yml's defaults.

    Fields ending in ``2`` belong to the second order. Sigmas are in pixels, noise ``sigma`` in
    8-bit levels (``/255``), ``resize_prob`` is the odds of (up, down, keep), up scales are drawn
    from ``[1, resize_range[1]]`` and down scales from ``[resize_range[0], 1]``. Kernel sizes are
    odd and drawn from ``7 .. blur_kernel_size`` (Real-ESRGAN: 7..21, zero-padded to 21); the final
    sinc uses ``blur_kernel_size``. ``usm_input`` degrades the unsharp-masked GT (both Real-ESRNet
    and Real-ESRGAN do); ``pool_size`` is the :class:`TrainingPairPool` size (0: no pool).
    Lists (from YAML) are stored as tuples.
    """

    blur_kernel_size: int = 21
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = DEFAULT_KERNEL_PROB
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    second_blur_prob: float = 0.8
    blur_kernel_size2: int = 21
    kernel_list2: tuple[str, ...] = KERNEL_TYPES
    kernel_prob2: tuple[float, ...] = DEFAULT_KERNEL_PROB
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    final_sinc_prob: float = 0.8
    usm_input: bool = True
    pool_size: int = 180

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))

    def order(self, number: int) -> DegradationOrder:
        """The settings of the first (``1``) or second (``2``) order."""
        if number not in (1, 2):
            raise ValueError(f"The degradation model has orders 1 and 2, not {number!r}.")
        suffix = "" if number == 1 else "2"
        return DegradationOrder(**{name: getattr(self, source + suffix) for name, source in _ORDER_SOURCES.items()})

    def validate(self) -> None:
        """Raise :class:`~i2i.errors.ConfigError` naming the first field that cannot work."""
        for number, suffix in ((1, ""), (2, "2")):
            _validate_order(self.order(number), suffix)
        for name in ("second_blur_prob", "final_sinc_prob"):
            _check_probability(name, getattr(self, name))
        if not isinstance(self.usm_input, bool):
            raise ConfigError(f"usm_input={self.usm_input!r} must be true or false.")
        if not isinstance(self.pool_size, int) or isinstance(self.pool_size, bool) or self.pool_size < 0:
            raise ConfigError(f"pool_size={self.pool_size!r} must be a whole number >= 0 (Real-ESRGAN uses 180; 0 turns the pool off).")


#: One value for the batch, or one per image (a list, a NumPy array or a tensor).
PerImage = Union[float, Sequence[float], np.ndarray, Tensor]
PerImageFlag = Union[bool, Sequence[bool], np.ndarray, Tensor]


def _check_probability(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value!r} must be a probability between 0 and 1.")


def _check_distribution(name: str, values: Any, length: int) -> None:
    if not isinstance(values, tuple) or len(values) != length or any(
        not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 for v in values
    ):
        raise ConfigError(f"{name}={values!r} must be {length} probabilities >= 0, one per choice.")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"{name}={values!r} sums to {sum(values):g}; the probabilities must sum to 1.")


def _check_range(name: str, pair: Any, low: float, high: float = math.inf) -> None:
    if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)):
        raise ConfigError(f"{name}={pair!r} must be a [low, high] pair of numbers.")
    if not low <= pair[0] <= pair[1] <= high:
        bounds = f"between {low:g} and {high:g}" if high < math.inf else f">= {low:g}"
        raise ConfigError(f"{name}={list(pair)} must be ordered (low <= high) and {bounds}.")


def _validate_order(order: DegradationOrder, suffix: str) -> None:
    size = order.kernel_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 3 or size % 2 == 0:
        name = "blur_kernel_size" + suffix
        raise ConfigError(f"{name}={size!r} must be an odd whole number >= 3 (Real-ESRGAN uses 21).")
    unknown = [k for k in order.kernel_list if k not in KERNEL_TYPES] if isinstance(order.kernel_list, tuple) else [order.kernel_list]
    if unknown or not order.kernel_list:
        raise ConfigError(f"kernel_list{suffix}={order.kernel_list!r} must list kernel types from: {', '.join(KERNEL_TYPES)}.")
    _check_distribution("kernel_prob" + suffix, order.kernel_prob, len(order.kernel_list))
    _check_distribution("resize_prob" + suffix, order.resize_prob, 3)
    for name in ("sinc_prob", "gaussian_noise_prob", "gray_noise_prob"):
        _check_probability(name + suffix, getattr(order, name))
    for name, low in (("blur_sigma", 1e-3), ("betag_range", 1e-3), ("betap_range", 1e-3), ("resize_range", 1e-3), ("noise_range", 0.0), ("poisson_scale_range", 0.0)):
        _check_range(name + suffix, getattr(order, name), low)
    _check_range("jpeg_range" + suffix, order.jpeg_range, 1.0, 100.0)
    if not order.resize_range[0] <= 1.0 <= order.resize_range[1]:
        raise ConfigError(f"resize_range{suffix}={list(order.resize_range)} must contain 1 (down scales come from below it, up scales from above).")


# --------------------------------------------------------------------------- noise and JPEG


def _per_image(value: float | Sequence[float] | np.ndarray | Tensor, image: Tensor, dtype: torch.dtype) -> Tensor:
    """A scalar or per-image value as a (B, 1, 1, 1) tensor on the image's device."""
    tensor = torch.as_tensor(value, dtype=dtype).to(image.device).reshape(-1, 1, 1, 1)
    return tensor.expand(image.shape[0], 1, 1, 1) if tensor.shape[0] == 1 else tensor


def add_gaussian_noise(image: Tensor, sigma: PerImage, gray: PerImageFlag = False, *, clip: bool = True) -> Tensor:
    """``image`` (B, C, H, W) in [0, 1] plus Gaussian noise of std ``sigma`` 8-bit levels (``/255``).

    ``sigma`` and ``gray`` are one value or one per image; a gray image gets the same noise in
    every channel (the noise of channel 0), a colour image independent noise per channel.
    The result is clipped to [0, 1] unless ``clip=False``.
    """
    noise = torch.randn_like(image) * (_per_image(sigma, image, image.dtype) / 255.0)
    noise = torch.where(_per_image(gray, image, torch.bool), noise[:, :1], noise)
    out = image + noise
    return out.clamp(0, 1) if clip else out


def add_poisson_noise(image: Tensor, scale: PerImage, gray: PerImageFlag = False, *, clip: bool = True) -> Tensor:
    """``image`` (B, C, H, W) in [0, 1] plus shot noise, as BasicSR's ``generate_poisson_noise_pt``.

    The image is rounded to 8-bit levels; with ``n`` its number of distinct levels and
    ``v = 2**ceil(log2(n))``, the noise is ``(Poisson(v * x) / v - x) * scale``: its variance is
    ``x * scale**2 / v``, growing with intensity. A gray image draws the noise on its luminance
    (ITU-R 601) and adds it to every channel. ``scale`` and ``gray`` are one value or one per image.
    """
    levels = (image.clamp(0, 1) * 255).round() / 255
    gray = _per_image(gray, image, torch.bool)
    if image.shape[1] == 3:
        luminance = (kornia.color.rgb_to_grayscale(image).clamp(0, 1) * 255).round() / 255
        levels = torch.where(gray, luminance, levels)
    codes = (levels * 255).round().long().flatten(1)
    distinct = torch.zeros(image.shape[0], 256, device=image.device).scatter_(1, codes, 1.0).sum(1)
    values = torch.exp2(torch.ceil(torch.log2(distinct))).to(image.dtype).view(-1, 1, 1, 1)
    noise = torch.poisson(levels * values) / values - levels
    noise = torch.where(gray, noise[:, :1], noise) * _per_image(scale, image, image.dtype)
    out = image + noise
    return out.clamp(0, 1) if clip else out


def jpeg(image: Tensor, quality: PerImage) -> Tensor:
    """JPEG compression round trip of RGB (B, 3, H, W) in [0, 1] at ``quality`` (one or one per image).

    ``kornia.enhance.jpeg_codec_differentiable``: libjpeg's standard tables scaled by quality,
    4:2:0 chroma, 8x8 DCT. The input is clipped to [0, 1] first (as Real-ESRGAN does before its
    DiffJPEG) and so is the output.
    """
    quality = torch.as_tensor(quality, dtype=torch.float32).to(image.device).reshape(-1)
    return kornia.enhance.jpeg_codec_differentiable(image.clamp(0, 1), quality).clamp(0, 1)


def quantize_8bit(image: Tensor) -> Tensor:
    """Clip to [0, 1] and round to the 256 levels of an 8-bit image."""
    return (image * 255.0).round().clamp(0, 255) / 255.0


def _random_noise(image: Tensor, order: DegradationOrder) -> Tensor:
    """Gaussian noise (probability ``gaussian_noise_prob``) or else Poisson noise, per image."""
    batch = image.shape[0]
    gaussian = np.random.uniform(size=batch) < order.gaussian_noise_prob
    gray = np.random.uniform(size=batch) < order.gray_noise_prob
    sigma = np.random.uniform(*order.noise_range, size=batch)
    scale = np.random.uniform(*order.poisson_scale_range, size=batch)
    out = torch.empty_like(image)
    for chosen, add, strength in ((gaussian, add_gaussian_noise, sigma), (~gaussian, add_poisson_noise, scale)):
        index = np.flatnonzero(chosen)
        if index.size == batch:
            return add(image, strength, gray)
        if index.size:
            where = torch.as_tensor(index).to(image.device)
            out[where] = add(image[where], strength[index], gray[index])
    return out


def _random_jpeg(image: Tensor, quality_range: tuple[float, float]) -> Tensor:
    return jpeg(image, np.random.uniform(*quality_range, size=image.shape[0]))


def _resize(image: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    size = (max(1, size[0]), max(1, size[1]))
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image, size=size, mode=mode, align_corners=None if mode == "area" else False)


def _random_scale(order: DegradationOrder) -> float:
    """Up, down or keep with ``resize_prob``; the scale uniform on that side of 1 (per batch)."""
    kind = int(np.random.choice(3, p=np.asarray(order.resize_prob) / sum(order.resize_prob)))
    low, high = order.resize_range
    return float(np.random.uniform(1.0, high)) if kind == 0 else float(np.random.uniform(low, 1.0)) if kind == 1 else 1.0


def _random_mode() -> str:
    return RESIZE_MODES[int(np.random.randint(len(RESIZE_MODES)))]


# ------------------------------------------------------------------------------ the pipeline


class Degrader:
    """Real-ESRGAN's training-pair synthesis: GT batch -> (lq, gt, gt_usm), all on the GT's device.

    ``scale`` is the super-resolution factor, ``crop_size`` the GT patch size (a multiple of
    ``scale``); the LQ patch is ``crop_size // scale``. Runs without gradients.
    """

    def __init__(self, config: DegradationConfig, *, scale: int = 4, crop_size: int = 256) -> None:
        config.validate()
        if not isinstance(scale, int) or scale < 1:
            raise ConfigError(f"scale={scale!r} must be a whole number >= 1 (Real-ESRGAN x4 uses 4).")
        if not isinstance(crop_size, int) or crop_size < scale or crop_size % scale:
            raise ConfigError(f"crop_size={crop_size!r} must be a positive multiple of scale={scale} (Real-ESRGAN uses 256 for x4).")
        self.config = config
        self.scale = scale
        self.crop_size = crop_size
        self._orders = (config.order(1), config.order(2))

    def sample_kernels(self, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
        """Per-image kernels of the first blur, the second blur and the final sinc, as CPU float32
        (B, k, k) stacks zero-padded to ``blur_kernel_size`` (``blur_kernel_size2`` for the second).

        A skipped second blur (probability ``1 - second_blur_prob``) or final sinc (``1 -
        final_sinc_prob``) is a unit pulse. The final sinc's cutoff is uniform in ``[pi/3, pi]``
        for every size, as in Real-ESRGAN.
        """
        first, second = self._orders
        cfg = self.config
        stacks: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        for _ in range(batch_size):
            stacks[0].append(pad_kernel(_random_kernel(first), first.kernel_size))
            blur2 = np.random.uniform() < cfg.second_blur_prob
            stacks[1].append(pad_kernel(_random_kernel(second), second.kernel_size) if blur2 else pulse_kernel(second.kernel_size))
            if np.random.uniform() < cfg.final_sinc_prob:
                size = random_kernel_size(first.kernel_size)
                sinc = sinc_kernel(size, float(np.random.uniform(math.pi / 3, math.pi)))
                stacks[2].append(pad_kernel(sinc, first.kernel_size))
            else:
                stacks[2].append(pulse_kernel(first.kernel_size))
        return tuple(torch.from_numpy(np.stack(s)).float() for s in stacks)  # type: ignore[return-value]

    @torch.no_grad()
    def degrade(self, image: Tensor) -> Tensor:
        """The two orders on (B, 3, H, W) in [0, 1] -> LQ (B, 3, H // scale, W // scale) on 8-bit levels."""
        first, second = self._orders
        height, width = image.shape[-2:]
        kernel1, kernel2, sinc = (trim_kernels(k) for k in self.sample_kernels(image.shape[0]))
        out = filter_per_image(image, kernel1)
        s = _random_scale(first)
        out = _resize(out, (int(height * s), int(width * s)), _random_mode())
        out = _random_jpeg(_random_noise(out, first), first.jpeg_range)
        out = filter_per_image(out, kernel2)
        s = _random_scale(second)
        out = _resize(out, (int(height / self.scale * s), int(width / self.scale * s)), _random_mode())
        out = _random_noise(out, second)
        # [resize back + sinc] and JPEG in either order (Real-ESRGAN found other orders make twisted lines).
        final = (height // self.scale, width // self.scale)
        if np.random.uniform() < 0.5:
            out = filter_per_image(_resize(out, final, _random_mode()), sinc)
            out = _random_jpeg(out, second.jpeg_range)
        else:
            out = _random_jpeg(out, second.jpeg_range)
            out = filter_per_image(_resize(out, final, _random_mode()), sinc)
        return quantize_8bit(out)

    def _checked(self, gt: Tensor) -> Tensor:
        if not isinstance(gt, Tensor) or gt.ndim != 4 or gt.shape[1] != 3 or not gt.is_floating_point():
            got = f"{tuple(gt.shape)} {gt.dtype}" if isinstance(gt, Tensor) else type(gt).__name__
            raise DataError(f"The degradation model takes RGB float batches (B, 3, H, W) in [0, 1]; got {got}.")
        if min(gt.shape[-2:]) < self.crop_size:
            raise ConfigError(
                f"GT images of {gt.shape[-1]}x{gt.shape[-2]} are smaller than crop_size={self.crop_size}; "
                "lower crop_size or load larger GT tiles (Real-ESRGAN loads 400x400)."
            )
        return gt.float() if gt.dtype in (torch.float16, torch.bfloat16) else gt

    @torch.no_grad()
    def __call__(self, gt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """gt (B, 3, H, W) in [0, 1], ``H, W >= crop_size`` -> (lq, gt, gt_usm).

        Degrades ``usm_sharpen(gt)`` (or ``gt`` when not ``usm_input``) through both orders, then
        cuts one random crop, the same for the whole batch as Real-ESRGAN's ``paired_random_crop``:
        lq (B, 3, crop_size/scale, crop_size/scale) on 8-bit levels, and the matching
        (B, 3, crop_size, crop_size) windows of gt and of its unsharp-masked copy gt_usm.
        """
        gt = self._checked(gt)
        gt_usm = usm_sharpen(gt)
        lq = self.degrade(gt_usm if self.config.usm_input else gt)
        patch = self.crop_size // self.scale
        top = int(np.random.randint(0, lq.shape[-2] - patch + 1))
        left = int(np.random.randint(0, lq.shape[-1] - patch + 1))
        window = (..., slice(top * self.scale, (top + patch) * self.scale), slice(left * self.scale, (left + patch) * self.scale))
        return lq[..., top : top + patch, left : left + patch].contiguous(), gt[window].contiguous(), gt_usm[window].contiguous()


def _random_kernel(order: DegradationOrder) -> np.ndarray:
    return random_kernel(
        random_kernel_size(order.kernel_size),
        kernel_list=order.kernel_list,
        kernel_prob=order.kernel_prob,
        sigma_range=order.blur_sigma,
        betag_range=order.betag_range,
        betap_range=order.betap_range,
        sinc_prob=order.sinc_prob,
    )


class TrainingPairPool:
    """Real-ESRGAN's training pair pool (``_dequeue_and_enqueue``): degradations mix across batches.

    A batch draws one resize scale and mode for all its images; the pool breaks that up. While it
    fills, batches pass through and are stored; once full, each call returns ``B`` pairs taken at
    random from the pool and puts the new batch in their places (the same distribution as
    Real-ESRGAN's shuffle-then-swap of the first ``B``; the permutation comes from torch's CPU
    generator). ``size`` must be a multiple of the batch size (use ``drop_last`` in the loader);
    ``size=0`` passes batches through. Only lq and gt are pooled: sharpen the returned gt again
    (:func:`usm_sharpen`) where gt_usm is needed, as Real-ESRGAN does.
    """

    def __init__(self, size: int = 180) -> None:
        if not isinstance(size, int) or size < 0:
            raise ConfigError(f"pool_size={size!r} must be a whole number >= 0 (Real-ESRGAN uses 180).")
        self.size = size
        self._lq: Tensor | None = None
        self._gt: Tensor | None = None
        self._filled = 0
        self._restored: tuple[Tensor, Tensor] | None = None

    def _allocate(self, lq: Tensor, gt: Tensor) -> None:
        stored = self._restored
        if stored is not None and (stored[0].shape[1:] != lq.shape[1:] or stored[1].shape[1:] != gt.shape[1:]):
            raise ConfigError(
                f"The restored training pair pool holds lq {tuple(stored[0].shape[1:])} and gt {tuple(stored[1].shape[1:])}, "
                f"but the batches are {tuple(lq.shape[1:])} and {tuple(gt.shape[1:])}; resume with the crop size and scale of the checkpoint."
            )
        self._lq = lq.new_zeros((self.size, *lq.shape[1:]))
        self._gt = gt.new_zeros((self.size, *gt.shape[1:]))
        if stored is not None:
            self._lq[: self._filled] = stored[0].to(lq)
            self._gt[: self._filled] = stored[1].to(gt)
        self._restored = None

    @torch.no_grad()
    def __call__(self, lq: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
        """(lq, gt) batches in -> (lq, gt) batches out, same shapes, on the same device."""
        if self.size == 0:
            return lq, gt
        batch = lq.shape[0]
        if self.size % batch:
            nearest = max(batch, round(self.size / batch) * batch)
            raise ConfigError(
                f"pool_size={self.size} is not a multiple of the batch size {batch}; use pool_size={nearest} "
                "or a batch size that divides it (and drop the last, smaller batch of an epoch)."
            )
        if self._lq is None or self._gt is None:
            self._allocate(lq, gt)
        assert self._lq is not None and self._gt is not None
        if self._filled < self.size:
            self._lq[self._filled : self._filled + batch] = lq
            self._gt[self._filled : self._filled + batch] = gt
            self._filled += batch
            return lq, gt
        picked = torch.randperm(self.size)[:batch].to(lq.device)
        out_lq, out_gt = self._lq[picked], self._gt[picked]
        self._lq[picked] = lq
        self._gt[picked] = gt
        return out_lq, out_gt

    def state_dict(self) -> dict[str, Any]:
        """The stored pairs (on the CPU; only the filled part) and the fill count, for checkpoints."""
        if self._restored is not None:
            lq, gt = self._restored
        elif self._lq is not None and self._gt is not None:
            lq, gt = self._lq[: self._filled].to("cpu", copy=True), self._gt[: self._filled].to("cpu", copy=True)
        else:
            lq = gt = torch.zeros(0)
        return {"size": self.size, "filled": self._filled, "lq": lq, "gt": gt}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the tensors move to the batches' device on the next call."""
        if int(state["size"]) != self.size:
            raise ConfigError(f"The checkpoint's training pair pool has size {int(state['size'])}, this run's pool_size is {self.size}; use the same pool_size to resume.")
        self._filled = int(state["filled"])
        self._lq = self._gt = None
        self._restored = (state["lq"], state["gt"]) if self._filled else None
