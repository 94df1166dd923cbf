"""Score a folder of existing SR outputs (any tool's) against ground truth, as `i2i eval` scores a
model: the same PSNR/SSIM conventions (:mod:`i2i.evaluation`), optional LPIPS and FID.

**Matching.** An output and a ground-truth image pair up when their paths inside their folders
are equal without the extension (``sub/baby.png`` and ``sub/baby.bmp``). Tools name outputs with a
suffix (``baby_x4.png``, ``baby_out.png``, ``baby_SR.png``); ``sr_suffix`` says which: the stem of
every output must end with it and is compared without it (BasicSR's ``suffix`` in its metric
scripts). Files left without a partner are reported on both sides; at least one pair must match.

**Sizes.** An output and its ground truth must have the same size, with one exception that BasicSR
makes too: when ``scale`` is given and the ground truth is larger by fewer than ``scale`` pixels in
each direction (an HR image that is not a multiple of the scale, whose output was made from the
bicubic LR of its cropped copy), the ground truth is cropped at the bottom and right to the
output's size, as ``modcrop`` does. Any other difference is an error listing every pair with both
sizes, before anything is scored.

**Border.** ``crop_border`` pixels come off every side before measuring; by default ``scale``
(the SR papers' convention) when it is given, else none.
"""
from __future__ import annotations

import os
from pathlib import Path

from i2i.data.io import list_images, read_image, read_image_size
from i2i.errors import DataError, UsageError, format_problems
from i2i.eval_report import PairReport, PairScores
from i2i.evaluation import DeepMetrics, as_eval8, sr_scores

__all__ = ["match_outputs", "evaluate_outputs"]


def _keyed(paths: list[Path], folder: Path, suffix: str, side: str) -> tuple[dict[str, Path], list[str]]:
    """``{relative path without extension (and suffix): path}`` and the names without the suffix."""
    keyed: dict[str, list[Path]] = {}
    unsuffixed = []
    for path in paths:
        rel = path.relative_to(folder).with_suffix("")
        if suffix:
            if not rel.name.endswith(suffix) or rel.name == suffix:
                unsuffixed.append(path.relative_to(folder).as_posix())
                continue
            rel = rel.with_name(rel.name[: -len(suffix)])
        keyed.setdefault(rel.as_posix(), []).append(path)
    clashes = [" and ".join(p.relative_to(folder).as_posix() for p in v) for v in keyed.values() if len(v) > 1]
    if clashes:
        raise DataError(f"Two {side} files have the same name apart from the extension; keep one of each:\n"
                        f"{format_problems(clashes)}")
    return {key: v[0] for key, v in keyed.items()}, unsuffixed


def _suffix_hint(sr_names: list[str], hr_keys: list[str]) -> str:
    """' (the outputs look named NAME_x4: try --sr-suffix _x4)' when one suffix explains them."""
    suffixes = set()
    for name in sr_names[:50]:
        stem = Path(name).with_suffix("").as_posix()
        found = [stem[len(key):] for key in hr_keys if stem.startswith(key) and len(stem) > len(key)]
        if found:  # outputs without any ground-truth prefix are strays; the others must agree
            suffixes.add(min(found, key=len))
    if len(suffixes) != 1:
        return ""
    suffix = suffixes.pop()
    return f" The outputs look named NAME{suffix}: add --sr-suffix {suffix}."


def match_outputs(sr_dir: str | os.PathLike, hr_dir: str | os.PathLike, sr_suffix: str = ""
                  ) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """``([(name, output, ground truth)], unmatched outputs, unmatched ground truths)``, sorted.

    Raises DataError when a folder is empty, two files of one folder differ only by extension, or
    no pair matches (with a hint at ``--sr-suffix`` when one suffix explains the names).
    """
    sr_dir, hr_dir = Path(sr_dir), Path(hr_dir)
    sr_paths, hr_paths = list_images(sr_dir), list_images(hr_dir)
    for folder, paths in ((sr_dir, sr_paths), (hr_dir, hr_paths)):
        if not paths:
            raise DataError(f"No images in the folder {str(folder)!r}.")
    sr, unsuffixed = _keyed(sr_paths, sr_dir, sr_suffix, "output")
    hr, _ = _keyed(hr_paths, hr_dir, "", "ground-truth")
    pairs = [(key, sr[key], hr[key]) for key in sorted(sr) if key in hr]
    unmatched_sr = sorted(unsuffixed + [sr[k].relative_to(sr_dir).as_posix() for k in sr if k not in hr])
    unmatched_hr = sorted(hr[k].relative_to(hr_dir).as_posix() for k in hr if k not in sr)
    if not pairs:
        hint = "" if sr_suffix else _suffix_hint([p.relative_to(sr_dir).as_posix() for p in sr_paths], sorted(hr))
        raise DataError(
            f"No output in {str(sr_dir)!r} has a ground-truth image of the same name in {str(hr_dir)!r} "
            f"(e.g. {unmatched_sr[0]!r} and {unmatched_hr[0] if unmatched_hr else '-'!r}).{hint}"
        )
    return pairs, unmatched_sr, unmatched_hr


def _check_sizes(pairs: list[tuple[str, Path, Path]], sr_dir: Path, hr_dir: Path, scale: int | None) -> None:
    """Raise DataError listing every pair whose sizes differ beyond the ``scale`` crop rule."""
    problems = []
    for _, sr_path, hr_path in pairs:
        (sh, sw), (hh, hw) = read_image_size(sr_path), read_image_size(hr_path)
        fits = (sh, sw) == (hh, hw) or (scale is not None and 0 <= hh - sh < scale and 0 <= hw - sw < scale)
        if not fits:
            problems.append(f"{sr_path.relative_to(sr_dir).as_posix()} is {sw}x{sh}, "
                            f"{hr_path.relative_to(hr_dir).as_posix()} is {hw}x{hh}")
    if problems:
        rule = (f"with --scale {scale} the ground truth may only be up to {scale - 1} pixels larger" if scale
                else "give --scale S if the ground truth is up to S-1 pixels larger (it is cropped to a multiple of S)")
        raise DataError(f"Outputs and ground truth differ in size ({rule}):\n{format_problems(problems)}")


def evaluate_outputs(
    sr_dir: str | os.PathLike,
    hr_dir: str | os.PathLike,
    *,
    sr_suffix: str = "",
    scale: int | None = None,
    crop_border: int | None = None,
    y_channel: bool = True,
    deep: DeepMetrics | None = None,
    progress: bool = False,
) -> PairReport:
    """PSNR/SSIM (and LPIPS, FID with ``deep``) of every output in ``sr_dir`` against its ground
    truth in ``hr_dir``, matched by name (see the module docstring for the rules)."""
    from tqdm import tqdm

    if scale is not None and scale < 1:
        raise UsageError(f"--scale must be a positive integer, got {scale}.")
    if crop_border is not None and crop_border < 0:
        raise UsageError(f"--crop-border must be 0 or more, got {crop_border}.")
    border = crop_border if crop_border is not None else (scale or 0)
    sr_dir, hr_dir = Path(sr_dir), Path(hr_dir)
    pairs, unmatched_sr, unmatched_hr = match_outputs(sr_dir, hr_dir, sr_suffix)
    _check_sizes(pairs, sr_dir, hr_dir, scale)
    if deep is not None:
        deep.check_count(len(pairs))
    results = []
    for _, sr_path, hr_path in tqdm(pairs, desc="eval", unit="img", disable=not progress, dynamic_ncols=True):
        output = as_eval8(read_image(sr_path))
        hr = as_eval8(read_image(hr_path))[: output.shape[0], : output.shape[1]]
        if min(output.shape[:2]) - 2 * border < 11:
            raise DataError(f"{sr_path} is {output.shape[1]}x{output.shape[0]}: too small for SSIM's 11x11 window "
                            f"after a border crop of {border}.")
        psnr, ssim = sr_scores(output, hr, border=border, y_channel=y_channel)
        scores = PairScores(image=sr_path.relative_to(sr_dir).as_posix(), width=output.shape[1],
                            height=output.shape[0], psnr=psnr, ssim=ssim)
        if deep is not None:
            deep.reference(hr, border=border)
            scores.lpips = deep.score(output, hr, border=border, name="outputs")
        results.append(scores)
    settings = {
        "sr": str(sr_dir), "hr": str(hr_dir),
        "matching": f"name without extension and the suffix {sr_suffix!r}" if sr_suffix else "name without extension",
        "channel": "Y (BT.601, MATLAB rgb2ycbcr)" if y_channel else "RGB",
        "border_crop": border,
        "scale": scale,
        **(deep.settings() if deep is not None else {}),
    }
    return PairReport(images=results, settings=settings, fid=deep.fid_scores() if deep is not None else {},
                      unmatched_sr=unmatched_sr, unmatched_hr=unmatched_hr)
