"""Benchmark `i2i upscale` against a plain loop of the same network over the same files.

The plain loop is what Real-ESRGAN's inference script does per image: read with OpenCV, convert to
a float tensor, one forward pass in fp32, clamp, round to uint8, write with OpenCV, one image after
the other. i2i runs its folder processor (`i2i.inference.folder.translate_path`, what
`i2i upscale` calls): reader and writer threads, batching, memory planning, channels-last and the
host memory cache.

Both sides load the same generator file (random weights, saved once) and read the same real photos
(scikit-image's sample images, cropped to ``--crop``). Each side runs in its own fresh process,
rounds interleaved; a round reports images/s after the model is loaded (steady state) and the whole
process's wall time. ``--frame-4k`` instead upscales one 960x540 frame to 3840x2160 on each side
(i2i tiled, the plain loop whole) and reports the time and the peak resident memory of each process.

    python scripts/bench_upscale.py --model rrdbnet_x4plus --crop 96 --images 6 --rounds 3
    python scripts/bench_upscale.py --model compact --crop 256 --images 8 --rounds 3
    python scripts/bench_upscale.py --model rrdbnet_x4plus --frame-4k
"""
from __future__ import annotations

import argparse
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

import cv2
import numpy as np

#: Networks measured, as (registered name, keyword arguments): Real-ESRGAN's published shapes.
MODELS = {
    "rrdbnet_x4plus": ("rrdbnet_x4plus", {"scale": 4}),  # RealESRGAN_x4plus: 64 features, 23 blocks
    "compact": ("srvgg_compact", {"scale": 4, "num_feat": 64, "num_conv": 32}),  # realesr-general-x4v3
    "animevideov3": ("srvgg_compact", {"scale": 4, "num_feat": 64, "num_conv": 16}),
}


def make_inputs(folder: Path, count: int, crop: int) -> None:
    """``count`` centre crops of scikit-image's photos: the same inputs bench_peers.py uses."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from setup_peers import make_photos

    make_photos(folder, count, crop)


def save_model(path: Path, name: str) -> None:
    import torch

    from i2i.checkpoint import GeneratorInfo, save_generator
    from i2i.layers import init_weights
    from i2i.models import create_model

    registered, kwargs = MODELS[name]
    torch.manual_seed(0)
    model = init_weights(create_model(registered, **kwargs), "scaled_kaiming", 0.1)
    spec = model.model_spec
    save_generator(path, model, GeneratorInfo(model=spec["name"], kwargs=spec["kwargs"], value_range=(0.0, 1.0), scale=4))


def plain_loop(model_file: Path, inputs: list[Path], out: Path) -> float:
    """Real-ESRGAN's per-image loop; returns the seconds after the model is loaded."""
    import torch

    from i2i.checkpoint import load_generator

    model, _ = load_generator(model_file)
    start = time.perf_counter()
    for path in inputs:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
        x = torch.from_numpy(np.transpose(image[:, :, ::-1], (2, 0, 1)).copy()).unsqueeze(0)
        with torch.no_grad():
            y = model(x).squeeze(0).float().clamp_(0, 1).numpy()
        result = (np.transpose(y[::-1], (1, 2, 0)) * 255.0).round().astype(np.uint8)
        cv2.imwrite(str(out / path.name), result)
    return time.perf_counter() - start


def i2i_folder(model_file: Path, folder: Path, out: Path, tile: int | None) -> float:
    from i2i.inference.folder import translate_path
    from i2i.inference.translator import Translator

    translator = Translator.from_file(model_file, device="cpu", tile=tile)
    start = time.perf_counter()
    translate_path(translator, folder, out, overwrite=True, progress=False)
    return time.perf_counter() - start


def child(args: argparse.Namespace) -> None:
    """One measured side, in its own process; prints a JSON line."""
    folder, out = Path(args.inputs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    inputs = sorted(folder.glob("*.png"))
    if args.side == "plain":
        seconds = plain_loop(Path(args.model_file), inputs, out)
    else:
        seconds = i2i_folder(Path(args.model_file), folder, out, args.tile)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "images": len(inputs), "peak_mib": peak_mib}))


def run_side(side: str, model_file: Path, inputs: Path, out: Path, tile: int | None) -> dict:
    command = [sys.executable, __file__, "--child", side, "--model-file", str(model_file),
               "--inputs", str(inputs), "--out", str(out)]
    if tile is not None:
        command += ["--tile", str(tile)]
    start = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    record = json.loads(result.stdout.strip().splitlines()[-1])
    record["process_seconds"] = time.perf_counter() - start
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="compact")
    parser.add_argument("--images", type=int, default=6, help="photos in the folder")
    parser.add_argument("--crop", type=int, default=128, help="side of the square crop of each photo")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, sides interleaved")
    parser.add_argument("--frame-4k", action="store_true", help="one 960x540 -> 3840x2160 frame instead")
    parser.add_argument("--tile", type=int, default=None, help="i2i's tile size (default: automatic)")
    parser.add_argument("--child", choices=["i2i", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--model-file", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.side = args.child
        return child(args)

    work = Path(tempfile.mkdtemp(prefix="i2i-bench-upscale-"))
    model_file = work / "model.safetensors"
    save_model(model_file, args.model)
    inputs = work / "in"
    if args.frame_4k:
        frame = cv2.resize(cv2.imread(str(_first_photo(work))), (960, 540), interpolation=cv2.INTER_AREA)
        inputs.mkdir()
        cv2.imwrite(str(inputs / "frame.png"), frame)
        rounds = 1
    else:
        make_inputs(inputs, args.images, args.crop)
        rounds = args.rounds
    print(f"# {args.model}, {platform.machine()}, {os.cpu_count()} cores, torch threads default, "
          f"{time.strftime('%Y-%m-%d')}; {'one 960x540 frame' if args.frame_4k else f'{args.images} photos of {args.crop}x{args.crop}'}, x4")
    results: dict[str, list[dict]] = {"plain": [], "i2i": []}
    for index in range(rounds):
        for side in ("plain", "i2i"):
            record = run_side(side, model_file, inputs, work / f"out_{side}_{index}", args.tile)
            results[side].append(record)
            print(f"round {index + 1} {side:<5} {record['images'] / record['seconds']:.3f} images/s "
                  f"({record['seconds']:.2f} s after load, {record['process_seconds']:.2f} s whole process, "
                  f"peak RSS {record['peak_mib']:.0f} MiB)")
    ratios = [i["seconds"] and p["seconds"] / i["seconds"] for p, i in zip(results["plain"], results["i2i"])]
    spread = max(ratios) / min(ratios)
    verdict = f"median {statistics.median(ratios):.2f}x" if spread <= 1.5 else "unsettled (rounds disagree by more than 1.5x)"
    print(f"i2i / plain loop, steady state: {verdict}; rounds {', '.join(f'{r:.2f}' for r in ratios)}")


def _first_photo(work: Path) -> Path:
    make_inputs(work / "photo", 1, 10_000)
    return next((work / "photo").glob("*.png"))


if __name__ == "__main__":
    main()
