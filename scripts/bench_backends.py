"""Inference backends and precisions on the CPU: torch fp32, torch bf16 and ONNX Runtime fp32.

Each network is loaded once per variant as ``i2i upscale`` loads it (a Translator with its default
options; ``--backend onnxruntime`` through :func:`i2i.inference.onnx_backend.load_onnx_translator`,
exported once into a temporary ``I2I_HOME``); then rounds interleave the variants on the same real
photos (scikit-image's samples, centre crops of ``--size``), one warm-up pass each first. It prints
the median, min and max seconds per image per variant, and the PSNR of each variant's output
against torch fp32 on the same photos (bf16 must stay above 40 dB to be used by --precision auto).

    python scripts/bench_backends.py --models x4,animevideov3,rrdbnet_x4plus --size 128 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL_ANIMEVIDEOV3 = ROOT.parent / "shared" / "reference-checkpoints" / "realesr_animevideov3_x4_real.pth"
PHOTOS = ("astronaut", "chelsea", "coffee")


def photos(size: int) -> list[np.ndarray]:
    from skimage import data

    crops = []
    for name in PHOTOS:
        image = getattr(data, name)()[..., :3]
        h, w = image.shape[:2]
        top, left = (h - size) // 2, (w - size) // 2
        crops.append(np.ascontiguousarray(image[top : top + size, left : left + size]))
    return crops


def model_file(name: str, folder: Path) -> str:
    """A ``--model`` spec for ``name``: the bundled x4, the real animevideov3 weights, or an
    RRDBNet of RealESRGAN_x4plus's shape with random weights (timing only)."""
    if name == "x4":
        return "x4"
    if name == "animevideov3":
        if not REAL_ANIMEVIDEOV3.is_file():
            sys.exit(f"{REAL_ANIMEVIDEOV3} is missing (../shared/reference-checkpoints)")
        return str(REAL_ANIMEVIDEOV3)
    import torch

    from i2i.checkpoint import GeneratorInfo, save_generator
    from i2i.models import create_model

    torch.manual_seed(0)
    path = folder / f"{name}.safetensors"
    save_generator(path, create_model(name, scale=4),
                   GeneratorInfo(model=name, kwargs={"scale": 4}, value_range=(0.0, 1.0), scale=4, task="realesrgan"))
    return str(path)


def variants(spec: str) -> dict:
    from i2i.inference.onnx_backend import load_onnx_translator
    from i2i.inference.translator import Translator

    start = time.perf_counter()
    onnx = load_onnx_translator(spec, device="cpu")  # the first load exports into the fresh cache
    print(f"  onnxruntime: first load, export included, {time.perf_counter() - start:.1f} s")
    return {
        "torch fp32": Translator.from_file(spec, device="cpu", precision="fp32"),
        "torch bf16": Translator.from_file(spec, device="cpu", precision="bf16"),
        "onnxruntime fp32": onnx,
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def measure(name: str, size: int, rounds: int, folder: Path) -> None:
    images = photos(size)
    print(f"\n{name}:")
    runs = variants(model_file(name, folder))
    reference = [runs["torch fp32"].translate_image(image) for image in images]  # also the warm-up
    times: dict[str, list[float]] = {key: [] for key in runs}
    quality, apart = {}, {}
    for key, translator in runs.items():
        outputs = [translator.translate_image(image) for image in images]
        quality[key] = min(psnr(out, ref) for out, ref in zip(outputs, reference))
        apart[key] = max(int(np.abs(out.astype(int) - ref.astype(int)).max()) for out, ref in zip(outputs, reference))
    for _ in range(rounds):
        for key, translator in runs.items():
            for image in images:
                start = time.perf_counter()
                translator.translate_image(image)
                times[key].append(time.perf_counter() - start)
    scale = runs["torch fp32"].scale
    print(f"  {size}x{size} -> {scale * size}x{scale * size}, {rounds} rounds x {len(images)} photos")
    for key, values in times.items():
        print(f"  {key:18s} median {statistics.median(values):7.3f} s/img  min {min(values):7.3f}  "
              f"max {max(values):7.3f}   vs torch fp32: PSNR {quality[key]:5.1f} dB (worst photo), "
              f"at most {apart[key]} levels apart")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="x4,animevideov3,rrdbnet_x4plus")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each model's lines as soon as they are measured
    import onnxruntime
    import torch

    from i2i.device import cpu_features

    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, onnxruntime "
          f"{onnxruntime.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"CPU: {cpu_features()}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        os.environ["I2I_HOME"] = folder  # the ONNX exports go to a fresh cache
        for name in args.models.split(","):
            measure(name.strip(), args.size, args.rounds, Path(folder))


if __name__ == "__main__":
    main()
