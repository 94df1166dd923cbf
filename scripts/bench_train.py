#!/usr/bin/env python
"""Training throughput of a task's default recipe, in two modes, against the machine's limit.

* plain:     fp32, eager, contiguous NCHW, torch's default Adam (a per-parameter loop on the CPU),
             the system allocator: the arithmetic and mechanics of the public reference code;
* optimized: the toolkit's defaults for this device (fused Adam everywhere; reused host memory on
             the CPU; bf16 autocast and channels_last on CUDA; ``--compile`` adds torch.compile).

The networks, optimizers and train_step are the real ones, built by the trainer; the batch is a
fixed random tensor already on the device, so this times the model step, not data loading
(``scripts/bench_data.py`` times the data pipeline on its own). Each mode runs in a fresh process,
so the allocator setting and the peak memory belong to that mode alone. For every mode it prints:

* images/s and the median seconds per step;
* GFLOP per step: the convolutions and matrix products of one forward + backward + update, counted
  by ``torch.utils.flop_counter`` from the operators actually dispatched;
* achieved GFLOP/s and its fraction of the measured matmul ceiling of the device (the best large
  ``torch.mm`` at the mode's precision, measured in the same process just before and after the
  timed steps; see ``perf_utils.matmul_ceiling``);
* peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; the process's peak resident set on the CPU.

    python scripts/bench_train.py                       # pix2pix, 256x256, batch 1, this device
    python scripts/bench_train.py --batch 16 --steps 5
    python scripts/bench_train.py --task cyclegan --batch 4
    python scripts/bench_train.py --task srgan          # SRGAN stage 2, 96x96 HR crops, batch 16
    python scripts/bench_train.py --task srgan --stage psnr
    python scripts/bench_train.py --device cuda --batch 16 --compile

For SRGAN the batch is LR ``size/scale`` inputs and ``size`` HR targets in [0, 1], and the task is
the paper recipe's default (SRResNet 16x64 with batch norm, PatchGAN, VGG19 conv5_4 perceptual
loss). Without torchvision's VGG19 weights on disk, a randomly initialised VGG19 of the same shape
is used (same arithmetic cost) and the output says so.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from i2i.config import parse_config
from i2i.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_utils import PRECISION_NAMES, count_flops, matmul_ceiling, synchronize  # noqa: E402

MODES = {
    "plain": {"precision": "fp32", "channels_last": False, "compile": False, "fused_optimizer": False,
              "host_memory_cache": False},
    "optimized": {},  # the defaults
}
CEILING_SIZES = {"cpu": (1024, 2048), "cuda": (4096, 8192)}


def random_vgg19_weights(folder: Path) -> Path:
    """A torchvision-format VGG19 feature file with random weights (for timing only)."""
    from i2i.losses import VGG19_LAYERS, _vgg19_stack

    path = folder / "vgg19_random.pth"
    state = _vgg19_stack(VGG19_LAYERS["conv5_4"]).state_dict()
    torch.save({f"features.{k}": v for k, v in state.items()}, path)
    return path


def bench(
    task: str, mode: str, *, size: int, batch: int, steps: int, warmup: int, device: str, compile_: bool,
    task_options: dict | None = None,
) -> dict:
    train = {"device": device, **MODES[mode]}
    if mode == "optimized":
        train["compile"] = compile_
    task_section = {"name": task, **(task_options or {})}
    config = parse_config({"task": task_section, "data": {"crop_size": size, "load_size": size, "batch_size": batch}, "train": train})
    trainer = Trainer(config)
    task_obj = trainer.setup_task()
    dev = trainer.device
    g = torch.Generator().manual_seed(0)
    if task == "srgan":
        scale = config.task.scale
        batch_data = {
            "a": torch.rand(batch, 3, size // scale, size // scale, generator=g).to(dev),
            "b": torch.rand(batch, 3, size, size, generator=g).to(dev),
        }
    else:
        batch_data = {
            "a": (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(dev),
            "b": (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(dev),
        }
    if trainer.config.train.channels_last and dev.type == "cuda":
        batch_data = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch_data.items()}

    context = trainer.context

    def step() -> None:
        with context.autocast():
            task_obj.train_step(batch_data)
        context.end_iteration()

    for _ in range(warmup):
        step()
    # The ceiling is measured in this process just before and after the timed steps (the better of
    # the two), so a machine whose speed drifts, as shared ones do, is compared with itself.
    dtype = trainer.autocast_dtype or torch.float32
    ceiling = matmul_ceiling(dev, dtype, sizes=CEILING_SIZES[dev.type])
    synchronize(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        synchronize(dev)
        times.append(time.perf_counter() - start)
    peak_gib = (
        torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    ceiling = max(ceiling, matmul_ceiling(dev, dtype, sizes=CEILING_SIZES[dev.type]))
    flops = count_flops(step)  # one more step, counted rather than timed
    step_s = statistics.median(times)
    world = trainer.world_size
    if world > 1:  # every rank steps in lockstep; the slowest sets the pace
        slowest = torch.tensor([step_s], dtype=torch.float64, device=dev if dev.type == "cuda" else "cpu")
        torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
        step_s = float(slowest)
    return {
        "images_per_s": world * batch / step_s, "world_size": world, "step_s": step_s, "step_times": times, "peak_gib": peak_gib,
        "gflop_per_step": flops / 1e9, "precision": PRECISION_NAMES[trainer.autocast_dtype],
        "ceiling_gflops": ceiling / 1e9,
    }


def run_mode_in_child(args: argparse.Namespace, mode: str) -> dict:
    """One mode in a fresh process: its own allocator settings and its own peak memory."""
    argv = [sys.executable, __file__, *sys.argv[1:], "--child", mode]
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"mode {mode} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_mode_here(args: argparse.Namespace, mode: str, sr: bool, device: str) -> None:
    """Time one mode in this process; print its figures as JSON (rank 0 alone under torchrun)."""
    task_options: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        if sr:
            from i2i.losses import default_vgg19_weights_path

            task_options["stage"] = args.stage
            if args.stage == "gan":
                weights = Path(args.vgg_weights) if args.vgg_weights else default_vgg19_weights_path()
                task_options["vgg_weights"] = str(weights if weights.is_file() else random_vgg19_weights(Path(scratch)))
        result = bench(
            args.task, mode, size=args.size, batch=args.batch, steps=args.steps, warmup=args.warmup,
            device=device, compile_=args.compile, task_options=task_options,
        )
    if int(os.environ.get("RANK", "0")) == 0:
        if result["world_size"] > 1:
            print(f"{mode}: {result['world_size']} processes x batch {args.batch}: {result['images_per_s']:.3f} "
                  f"images/s in all, {result['step_s']:.3f} s/step (median of the slowest rank)")
        print(json.dumps(result), flush=True)


def row(label: str, r: dict) -> str:
    achieved = r["gflop_per_step"] / r["step_s"]
    return (f"{label:<10} {r['precision']:<9} {r['images_per_s']:>9.3f} {r['step_s']:>8.3f} {r['gflop_per_step']:>11.1f} "
            f"{achieved:>9.1f} {r['ceiling_gflops']:>8.0f} {achieved / r['ceiling_gflops']:>8.0%} {r['peak_gib']:>13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="pix2pix")
    parser.add_argument("--size", type=int, default=None, help="image size (HR size for srgan); default 256, srgan 96")
    parser.add_argument("--batch", type=int, default=None, help="batch size; default 1, srgan 16")
    parser.add_argument("--stage", default="gan", choices=["gan", "psnr"], help="srgan: which stage to time")
    parser.add_argument("--vgg-weights", default="", help="srgan: VGG19 weights file (default: torchvision's cache)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile in the optimized mode")
    parser.add_argument("--modes", default="plain,optimized")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the modes this often; the fastest round counts")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sr = args.task == "srgan"
    args.size = args.size or (96 if sr else 256)
    args.batch = args.batch or (16 if sr else 1)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun: each mode in this process group; rank 0 prints the global images/s.
        for mode in args.modes.split(","):
            run_mode_here(args, mode, sr, device)
        return
    if args.child:
        run_mode_here(args, args.child, sr, device)
        return

    note = ""
    if sr and args.stage == "gan":
        from i2i.losses import default_vgg19_weights_path

        if not (Path(args.vgg_weights) if args.vgg_weights else default_vgg19_weights_path()).is_file():
            note = " (VGG19 weights not on disk: random VGG19 of the same shape)"
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    what = f"stage {args.stage}, HR {args.size}x{args.size}" if sr else f"{args.size}x{args.size}"
    print(f"# {args.task} training, {what}, batch {args.batch}, median of {args.steps} timed steps after {args.warmup} warm-up{note}")
    print(f"# device: {device} ({name}); torch {torch.__version__}; {datetime.date.today()}")
    memory = "peak GiB" if dev.type == "cuda" else "peak RSS GiB"
    print(f"{'mode':<10} {'precision':<9} {'images/s':>9} {'s/step':>8} {'GFLOP/step':>11} {'GFLOP/s':>9} {'ceiling':>8} {'fraction':>8} {memory:>13}", flush=True)
    results: dict[str, dict] = {}
    # Modes alternate round by round, so a busy spell on a shared machine hits both; each mode's
    # fastest round counts (load only ever slows a run down).
    for round_index in range(args.rounds):
        for mode in args.modes.split(","):
            r = run_mode_in_child(args, mode)
            if mode not in results or r["step_s"] < results[mode]["step_s"]:
                results[mode] = r
            label = mode if args.rounds == 1 else f"{mode}#{round_index + 1}"
            print(row(label, r), flush=True)
            print(f"#   step times: {', '.join(f'{t:.3f}' for t in r['step_times'])}", flush=True)
    if args.rounds > 1:
        print("# fastest round of each mode:")
        for mode, r in results.items():
            print(row(mode, r))
    if "plain" in results and "optimized" in results:
        print(f"optimized / plain: {results['optimized']['images_per_s'] / results['plain']['images_per_s']:.2f}x")


if __name__ == "__main__":
    main()
