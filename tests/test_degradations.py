"""Real-ESRGAN's degradation model: each stage checked by its effect on real photos and flat fields.

Kernels by their moments, shapes and spectra; blur by the high-frequency energy it removes; noise by
its measured statistics; JPEG against OpenCV's codec; the pipeline by shapes, levels, alignment and
reproducibility from the global generators; the pair pool by its contents and its checkpoint.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from i2i.data.degradations import (
    DegradationConfig,
    Degrader,
    TrainingPairPool,
    add_gaussian_noise,
    add_poisson_noise,
    filter_per_image,
    jpeg,
    usm_sharpen,
)
from i2i.data.kernels import (
    KERNEL_TYPES,
    gaussian_kernel,
    generalized_gaussian_kernel,
    plateau_kernel,
    random_kernel,
    random_kernel_size,
    random_sinc_cutoff,
    sinc_kernel,
)
from i2i.errors import ConfigError

skdata = pytest.importorskip("skimage.data")
cv2 = pytest.importorskip("cv2")

#: Lowest PSNR (dB) between kornia's JPEG round trip and OpenCV's (libjpeg) at the same quality, on
#: astronaut 512x512 at q = 30..95. Measured 41.2 (q30), 42.8 (q50), 43.5 (q75), 46.1 (q95); chelsea and
#: coffee gave 40.7-47.6. The codecs differ in chroma subsampling (kornia: antialiased bilinear, libjpeg:
#: 2x2 box), chroma upsampling, DCT arithmetic and kornia's smooth rounding x + (round(x) - x)**3.
JPEG_VS_OPENCV_MIN_PSNR = 39.0


def photo(name: str = "astronaut", size: int = 256) -> torch.Tensor:
    """A real RGB photo as (1, 3, size, size) in [0, 1] (the central crop)."""
    image = getattr(skdata, name)()
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    image = image[top : top + size, left : left + size]
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def high_frequency_fraction(image: torch.Tensor, cutoff: float = 0.1) -> float:
    """The share of spectral energy above ``cutoff`` cycles/pixel (mean removed, all channels; a Hann
    window keeps the jump between opposite borders out of the spectrum)."""
    hann = torch.hann_window(image.shape[-2], periodic=False)[:, None] * torch.hann_window(image.shape[-1], periodic=False)
    spectrum = torch.fft.fft2((image - image.mean(dim=(-2, -1), keepdim=True)) * hann).abs() ** 2
    fy = torch.fft.fftfreq(image.shape[-2])[:, None]
    fx = torch.fft.fftfreq(image.shape[-1])[None, :]
    high = (fx**2 + fy**2).sqrt() > cutoff
    return float(spectrum[..., high].sum() / spectrum.sum())


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return 10 * math.log10(1.0 / np.mean((a - b) ** 2))


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def moments(kernel: np.ndarray) -> np.ndarray:
    """The 2x2 second-moment matrix of a centred kernel, in (x = columns, y = rows)."""
    offsets = np.arange(kernel.shape[0]) - kernel.shape[0] // 2
    x, y = np.meshgrid(offsets, offsets)
    return np.array([[(kernel * x * x).sum(), (kernel * x * y).sum()], [(kernel * x * y).sum(), (kernel * y * y).sum()]])


# ------------------------------------------------------------------------------------- kernels


def test_every_kernel_family_is_normalised_centred_and_sized() -> None:
    kernels = [
        gaussian_kernel(21, 2.0, 1.0, 0.7),
        generalized_gaussian_kernel(15, 2.0, 1.0, -0.3, beta=0.6),
        plateau_kernel(9, 1.5, 2.5, 1.1, beta=1.7),
        sinc_kernel(13, math.pi / 3),
    ]
    for kernel, size in zip(kernels, (21, 15, 9, 13)):
        assert kernel.shape == (size, size)
        assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-15)  # point-symmetric: no shift
        assert np.unravel_index(np.argmax(kernel), kernel.shape) == (size // 2, size // 2)


def test_gaussian_second_moments_are_the_sigmas_and_rotation_turns_the_axis() -> None:
    np.testing.assert_allclose(moments(gaussian_kernel(31, 3.0, 1.5)), [[9.0, 0.0], [0.0, 2.25]], atol=1e-3)
    np.testing.assert_allclose(moments(gaussian_kernel(31, 2.0)), [[4.0, 0.0], [0.0, 4.0]], atol=1e-3)
    for degrees in (30, 75, -60):
        variances, axes = np.linalg.eigh(moments(gaussian_kernel(31, 3.0, 1.0, math.radians(degrees))))
        np.testing.assert_allclose(variances, [1.0, 9.0], atol=1e-3)
        major = axes[:, 1]
        angle = math.degrees(math.atan2(major[1], major[0]))  # from columns towards rows
        assert (angle - degrees) % 180 == pytest.approx(0, abs=0.1) or (angle - degrees) % 180 == pytest.approx(180, abs=0.1)


def test_generalized_gaussian_and_plateau_flatten_as_beta_grows() -> None:
    np.testing.assert_allclose(generalized_gaussian_kernel(21, 2.0, beta=1.0), gaussian_kernel(21, 2.0), atol=1e-15)

    def shoulder(kernel: np.ndarray) -> float:  # the tap one pixel off centre over the centre tap
        c = kernel.shape[0] // 2
        return kernel[c, c + 1] / kernel[c, c]

    for family, betas in ((generalized_gaussian_kernel, (0.5, 1.0, 2.0, 4.0)), (plateau_kernel, (1.0, 1.5, 2.0, 4.0))):
        shoulders = [shoulder(family(21, 3.0, beta=b)) for b in betas]
        assert shoulders == sorted(shoulders) and shoulders[-1] > 0.99 > shoulders[0], (family.__name__, shoulders)
    # beta < 1 gives the generalized Gaussian heavier tails than the Gaussian of the same sigma
    assert generalized_gaussian_kernel(21, 2.0, beta=0.5)[10, 20] > 10 * gaussian_kernel(21, 2.0)[10, 20]


@pytest.mark.parametrize("omega_c", [math.pi / 3, math.pi / 2, 2 * math.pi / 3])
def test_sinc_spectrum_cuts_off_at_omega_c(omega_c: float) -> None:
    response = np.abs(np.fft.fft2(sinc_kernel(21, omega_c), (512, 512)))
    omega = 2 * math.pi * np.fft.fftfreq(512)
    radius = np.hypot(*np.meshgrid(omega, omega))
    assert response[radius < 0.7 * omega_c].mean() > 0.85
    assert response[(radius > 1.3 * omega_c) & (radius < math.pi)].mean() < 0.05
    along_x = response[0, : 256]  # |H| on the positive frequency axis
    crossing = omega[np.argmax(along_x < 0.5)]
    assert crossing == pytest.approx(omega_c, rel=0.12)


def test_random_kernels_draw_real_esrgans_sizes_cutoffs_and_widths() -> None:
    np.random.seed(0)
    assert set(random_kernel_size(21) for _ in range(400)) == {7, 9, 11, 13, 15, 17, 19, 21}
    small = [random_sinc_cutoff(11) for _ in range(300)]
    large = [random_sinc_cutoff(15) for _ in range(300)]
    assert math.pi / 3 <= min(small) < 1.2 and max(small) <= math.pi
    assert math.pi / 5 <= min(large) < 0.75
    only_iso = [random_kernel(21, kernel_list=("iso",), kernel_prob=(1.0,), sigma_range=(0.5, 2.0)) for _ in range(50)]
    for kernel in only_iso:
        np.testing.assert_allclose(kernel, kernel.T, atol=1e-15)  # isotropic
        assert 0.24 < moments(kernel)[0, 0] < 4.01
    aniso = random_kernel(21, kernel_list=("aniso",), kernel_prob=(1.0,), sigma_range=(0.5, 3.0))
    assert aniso.shape == (21, 21) and aniso.sum() == pytest.approx(1.0)
    mixed = [random_kernel(13, kernel_list=KERNEL_TYPES, sinc_prob=0.5) for _ in range(40)]
    assert all(k.shape == (13, 13) and k.sum() == pytest.approx(1.0) for k in mixed)
    assert any((k < 0).any() for k in mixed)  # sinc kernels have negative lobes, the others do not


# -------------------------------------------------------------------------------------- filters


def test_blur_removes_high_frequencies_monotonically_with_sigma() -> None:
    image = photo().expand(4, 3, 256, 256)
    sigmas = (0.5, 1.0, 2.0, 3.0)
    kernels = torch.from_numpy(np.stack([gaussian_kernel(21, s) for s in sigmas])).float()
    blurred = filter_per_image(image, kernels)  # one kernel per image, in one call
    energy = [high_frequency_fraction(blurred[i]) for i in range(4)]
    assert high_frequency_fraction(image[0]) > energy[0]
    assert energy == sorted(energy, reverse=True) and energy[-1] < 0.01 * energy[0], energy
    alone = filter_per_image(image[2:3], kernels[2:3])
    torch.testing.assert_close(blurred[2:3], alone)


def test_usm_sharpen_matches_opencv_unsharp_mask_and_adds_detail() -> None:
    image = photo("coffee")
    sharp = usm_sharpen(image)
    # BasicSR's usm_sharp written with OpenCV's GaussianBlur (51 taps, sigma from the size, reflect-101)
    img = image[0].permute(1, 2, 0).numpy()
    residual = img - cv2.GaussianBlur(img, (51, 51), 0)
    soft = cv2.GaussianBlur((np.abs(residual) * 255 > 10).astype(np.float32), (51, 51), 0)
    expected = soft * np.clip(img + 0.5 * residual, 0, 1) + (1 - soft) * img
    np.testing.assert_allclose(sharp[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)  # measured 2.4e-7
    assert high_frequency_fraction(sharp) > 1.2 * high_frequency_fraction(image)
    assert 0.0 <= float(sharp.min()) and float(sharp.max()) <= 1.0
    flat = torch.full((2, 3, 64, 80), 0.4)
    torch.testing.assert_close(usm_sharpen(flat), flat)


# ---------------------------------------------------------------------------------------- noise


def test_gaussian_noise_has_the_requested_standard_deviation() -> None:
    torch.manual_seed(0)
    flat = torch.full((3, 3, 256, 256), 0.5)
    noisy = add_gaussian_noise(flat, torch.tensor([5.0, 15.0, 25.0]), gray=False)
    for i, sigma in enumerate((5.0, 15.0, 25.0)):
        assert float((noisy[i] - 0.5).std()) == pytest.approx(sigma / 255, rel=0.03)
        assert float((noisy[i] - 0.5).mean()) == pytest.approx(0.0, abs=0.002)
    # colour noise differs between channels, gray noise is the same in each
    channels = noisy[1] - 0.5
    assert float(torch.corrcoef(channels.reshape(3, -1))[0, 1]) < 0.02
    gray = add_gaussian_noise(flat, 20.0, gray=[True, False, True])
    assert torch.equal(gray[0, 0], gray[0, 1]) and torch.equal(gray[0, 1], gray[0, 2]) and torch.equal(gray[2, 0], gray[2, 2])
    assert not torch.equal(gray[1, 0], gray[1, 1])


def test_poisson_noise_variance_grows_with_intensity() -> None:
    torch.manual_seed(0)
    ramp = torch.arange(256).float().div(255).expand(1, 3, 1024, 256).contiguous()  # 256 distinct levels
    intensity = ramp[0, 0, 0]
    middle = (intensity > 0.1) & (intensity < 0.8)  # away from the clip at 0 and 1
    for scale in (1.0, 2.0):
        noise = add_poisson_noise(ramp, scale) - ramp
        variance = noise[0].var(dim=1).mean(dim=0)  # per column, i.e. per intensity
        ratio = (variance[middle] / intensity[middle]).mean()
        assert float(ratio) == pytest.approx(scale**2 / 256, rel=0.05)
        assert float(variance[200]) > 2.5 * float(variance[60])
    gray = add_poisson_noise(ramp, 1.0, gray=True) - ramp
    assert torch.equal(gray[0, 0], gray[0, 1]) and torch.equal(gray[0, 0], gray[0, 2])


# ----------------------------------------------------------------------------------------- JPEG


def test_jpeg_matches_opencv_and_loses_more_at_lower_quality() -> None:
    image = photo(size=512)
    rgb = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    ours_vs_original = []
    for quality in (30, 50, 75, 95):
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        reference = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) / 255.0
        ours = jpeg(image, float(quality))[0].permute(1, 2, 0).numpy()
        assert psnr(ours, reference) > JPEG_VS_OPENCV_MIN_PSNR, quality
        ours_vs_original.append(psnr(ours, rgb / 255.0))
    assert ours_vs_original == sorted(ours_vs_original) and ours_vs_original[-1] - ours_vs_original[0] > 5
    batch = torch.cat([image[..., :128, :128], image[..., 128:256, :128]])
    per_image = jpeg(batch, torch.tensor([30.0, 90.0]))
    torch.testing.assert_close(per_image[1:], jpeg(batch[1:], 90.0))


# ------------------------------------------------------------------------------------- pipeline


def gt_batch() -> torch.Tensor:
    """Four real 128x128 GT tiles."""
    return torch.cat([photo(name, 128) for name in ("astronaut", "chelsea", "coffee", "immunohistochemistry")])


def test_degrader_outputs_shapes_ranges_and_8_bit_levels() -> None:
    seed_all(1)
    degrader = Degrader(DegradationConfig(), scale=4, crop_size=64)
    for _ in range(3):
        lq, gt, gt_usm = degrader(gt_batch())
        assert lq.shape == (4, 3, 16, 16) and gt.shape == gt_usm.shape == (4, 3, 64, 64)
        for out in (lq, gt, gt_usm):
            assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        torch.testing.assert_close(lq * 255, (lq * 255).round(), atol=1e-4, rtol=0)
        assert not torch.equal(gt, gt_usm)


def test_one_crop_is_shared_by_lq_gt_and_gt_usm() -> None:
    source = gt_batch()
    degrader = Degrader(DegradationConfig(), scale=4, crop_size=64)
    seed_all(3)
    lq, gt, gt_usm = degrader(source)
    seed_all(3)  # the same draws, without the crop
    full = degrader.degrade(usm_sharpen(source))
    matches = [(t, l) for t in range(32 - 16 + 1) for l in range(32 - 16 + 1) if torch.equal(full[..., t : t + 16, l : l + 16], lq)]
    assert len(matches) == 1
    top, left = matches[0]
    torch.testing.assert_close(gt, source[..., top * 4 : top * 4 + 64, left * 4 : left * 4 + 64])
    torch.testing.assert_close(gt_usm, usm_sharpen(source)[..., top * 4 : top * 4 + 64, left * 4 : left * 4 + 64])


def test_lq_stays_aligned_with_its_gt() -> None:
    seed_all(0)
    degrader = Degrader(DegradationConfig(), scale=4, crop_size=128)
    for _ in range(2):
        lq, gt, _ = degrader(gt_batch())
        up = F.interpolate(lq, scale_factor=4, mode="bicubic", align_corners=False)[..., 16:-16, 16:-16]
        aligned = F.mse_loss(up, gt[..., 16:-16, 16:-16], reduction="none").mean(dim=(1, 2, 3))
        for dy, dx in ((8, 0), (0, 8), (-8, 8)):
            shifted = torch.roll(gt, (dy, dx), dims=(-2, -1))[..., 16:-16, 16:-16]
            assert (aligned < F.mse_loss(up, shifted, reduction="none").mean(dim=(1, 2, 3))).all()


def test_the_same_seed_or_restored_generators_give_the_same_batch() -> None:
    degrader = Degrader(DegradationConfig(), scale=4, crop_size=64)
    seed_all(7)
    first = degrader(gt_batch())
    seed_all(7)
    again = degrader(gt_batch())
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    following = degrader(gt_batch())
    assert not torch.equal(following[0], first[0])
    torch.set_rng_state(torch_state)
    np.random.set_state(numpy_state)
    for a, b in zip(following, degrader(gt_batch())):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------------------- pool


def numbered_batches(count: int, batch: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches whose images carry their index as value, so the pool's contents can be traced."""
    out = []
    for b in range(count):
        ids = torch.arange(b * batch, (b + 1) * batch).float()
        out.append((ids.view(-1, 1, 1, 1).expand(batch, 3, 2, 2).clone(), ids.view(-1, 1, 1, 1).expand(batch, 3, 8, 8).clone()))
    return out


def ids(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t[:, 0, 0, 0]]


def test_pool_fills_then_swaps_and_keeps_pairs_together() -> None:
    torch.manual_seed(0)
    pool = TrainingPairPool(12)
    batches = numbered_batches(30)
    seen = []
    for step, (lq, gt) in enumerate(batches):
        out_lq, out_gt = pool(lq, gt)
        assert ids(out_lq) == ids(out_gt)  # a pair leaves together
        if step < 3:
            assert ids(out_lq) == ids(lq)  # while filling, batches pass through
        seen += ids(out_lq)
    held = ids(pool.state_dict()["lq"])
    # the first 12 pass through while also filling the pool: from then on each pair leaves exactly once
    assert sorted(seen[12:] + held) == list(range(120))
    assert any(max(ids(b)) - min(ids(b)) > 4 for b in (torch.tensor(seen[i : i + 4]).view(4, 1, 1, 1) for i in range(12, 120, 4)))


def test_pool_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    batches = numbered_batches(12)
    pool = TrainingPairPool(8)
    for lq, gt in batches[:5]:
        pool(lq, gt)
    state, rng = pool.state_dict(), torch.get_rng_state()
    assert state["lq"].device.type == "cpu" and state["filled"] == 8
    expected = [pool(lq, gt) for lq, gt in batches[5:]]
    resumed = TrainingPairPool(8)
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    for (lq, gt), (want_lq, want_gt) in zip(batches[5:], expected):
        got_lq, got_gt = resumed(lq, gt)
        assert torch.equal(got_lq, want_lq) and torch.equal(got_gt, want_gt)
    half = TrainingPairPool(8)
    half(*batches[0])
    again = TrainingPairPool(8)
    again.load_state_dict(half.state_dict())
    assert ids(again(*batches[1])[0]) == ids(batches[1][0]) and again.state_dict()["filled"] == 8


def test_pool_size_must_be_a_multiple_of_the_batch() -> None:
    with pytest.raises(ConfigError, match="pool_size=10 is not a multiple of the batch size 4"):
        TrainingPairPool(10)(*numbered_batches(1)[0])
    lq, gt = numbered_batches(1)[0]
    assert TrainingPairPool(0)(lq, gt)[0] is lq
    with pytest.raises(ConfigError, match="same pool_size"):
        TrainingPairPool(8).load_state_dict(TrainingPairPool(12).state_dict())


# ------------------------------------------------------------------------------------- settings


def test_defaults_are_those_of_train_realesrgan_x4plus_yml() -> None:
    c = DegradationConfig()
    c.validate()
    assert (c.kernel_prob, c.sinc_prob, c.blur_sigma, c.betag_range, c.betap_range) == (
        (0.45, 0.25, 0.12, 0.03, 0.12, 0.03), 0.1, (0.2, 3.0), (0.5, 4.0), (1.0, 2.0))
    assert (c.resize_prob, c.resize_range, c.gaussian_noise_prob, c.noise_range, c.poisson_scale_range) == (
        (0.2, 0.7, 0.1), (0.15, 1.5), 0.5, (1.0, 30.0), (0.05, 3.0))
    assert (c.second_blur_prob, c.blur_sigma2, c.resize_prob2, c.resize_range2, c.noise_range2, c.poisson_scale_range2) == (
        0.8, (0.2, 1.5), (0.3, 0.4, 0.3), (0.3, 1.2), (1.0, 25.0), (0.05, 2.5))
    assert (c.gray_noise_prob, c.gray_noise_prob2, c.jpeg_range, c.jpeg_range2, c.final_sinc_prob, c.pool_size) == (
        0.4, 0.4, (30.0, 95.0), (30.0, 95.0), 0.8, 180)
    assert DegradationConfig(noise_range=[2, 20]).noise_range == (2, 20)  # YAML lists become tuples


@pytest.mark.parametrize(
    "change, field",
    [
        ({"kernel_prob": (0.5, 0.25, 0.12, 0.03, 0.12, 0.03)}, "kernel_prob="),
        ({"kernel_list2": ("iso", "box")}, "kernel_list2="),
        ({"resize_prob2": (0.5, 0.5)}, "resize_prob2="),
        ({"resize_range": (0.5, 0.2)}, "resize_range="),
        ({"resize_range2": (1.1, 1.5)}, "resize_range2="),
        ({"blur_kernel_size": 20}, "blur_kernel_size="),
        ({"jpeg_range2": (30, 101)}, "jpeg_range2="),
        ({"gaussian_noise_prob2": 1.5}, "gaussian_noise_prob2="),
        ({"final_sinc_prob": -0.1}, "final_sinc_prob="),
        ({"blur_sigma": (0.0, 3.0)}, "blur_sigma="),
        ({"pool_size": -12}, "pool_size="),
    ],
)
def test_validate_names_the_bad_field(change: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        DegradationConfig(**change).validate()
    with pytest.raises(ConfigError, match=field):
        Degrader(DegradationConfig(**change))


def test_degrader_rejects_crops_it_cannot_cut() -> None:
    with pytest.raises(ConfigError, match="multiple of scale=4"):
        Degrader(DegradationConfig(), scale=4, crop_size=66)
    with pytest.raises(ConfigError, match="smaller than crop_size=256"):
        Degrader(DegradationConfig(), crop_size=256)(torch.rand(1, 3, 200, 300))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_degrader_runs_on_cuda_and_is_reproducible() -> None:
    degrader = Degrader(DegradationConfig(), scale=4, crop_size=64)
    source = gt_batch().cuda()
    seed_all(5)
    torch.cuda.manual_seed_all(5)
    lq, gt, gt_usm = degrader(source)
    assert lq.is_cuda and lq.shape == (4, 3, 16, 16) and gt.shape == (4, 3, 64, 64)
    seed_all(5)
    torch.cuda.manual_seed_all(5)
    assert torch.equal(degrader(source)[0], lq)
    pool = TrainingPairPool(8)
    for _ in range(3):
        out_lq, out_gt = pool(lq, gt)
        assert out_lq.is_cuda and out_gt.shape == gt.shape
