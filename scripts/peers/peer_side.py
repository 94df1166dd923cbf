"""The peer side of each comparison, one per process; prints one JSON line.

Runs with the peers' python (their own virtual environment), except ``pix2pix``, whose reference
step (reference_pix2pix.py) needs only torch. What each command runs:

* ``srresnet``: BasicSR's ``SRModel`` (MSRResNet x4, L1 pixel loss, Adam) built from an options
  dict as BasicSR's training script builds it, timed over ``feed_data`` + ``optimize_parameters``;
* ``upscale``: Real-ESRGAN's ``RealESRGANer.enhance`` over a folder, read and written with OpenCV
  one image after the other, fp32 (its inference script's loop; that script is not in the pip
  package, so this is a driver that calls its classes the same way);
* ``video``: Real-ESRGAN's video script's single-process path, as a driver for the same reason
  (and because that script calls ``torch.cuda.synchronize`` and sizes its process pool by the
  GPU count, so it does not run on a CPU): an ffmpeg process decodes BGR frames into a pipe, each
  frame goes through ``RealESRGANer.enhance``, another ffmpeg process encodes them with libx264
  (yuv420p, ffmpeg's default quality) and copies the input's audio.

``basicsr`` imports ``torchvision.transforms.functional_tensor``, which recent torchvision removed;
when that import fails, the module is aliased to its private successor and the output says so.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

SHIMMED: list[str] = []


def shim_functional_tensor() -> None:
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401
    except ImportError:
        import torchvision.transforms._functional_tensor as successor

        sys.modules["torchvision.transforms.functional_tensor"] = successor
        SHIMMED.append("torchvision.transforms.functional_tensor -> torchvision.transforms._functional_tensor")


def networks() -> dict:
    """Real-ESRGAN's published shapes, as its scripts build them."""
    shim_functional_tensor()
    from basicsr.archs.rrdbnet_arch import RRDBNet
    from basicsr.archs.srresnet_arch import MSRResNet
    from realesrgan.archs.srvgg_arch import SRVGGNetCompact

    return {
        "msrresnet": lambda: MSRResNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4),
        "rrdbnet": lambda: RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4),
        "compact": lambda: SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"),
    }


def versions(_: argparse.Namespace) -> dict:
    from importlib.metadata import version

    shim_functional_tensor()
    import basicsr  # noqa: F401  (both must import, not only be installed)
    import realesrgan  # noqa: F401

    return {name: version(name) for name in ("basicsr", "realesrgan", "torch")}


def weights(args: argparse.Namespace) -> dict:
    """Seeded random weights, saved the way the peers save them (``params`` / ``params_ema``)."""
    builders, keys = networks(), {"msrresnet": "params", "rrdbnet": "params_ema", "compact": "params"}
    names = {"msrresnet": "msrresnet_x4.pth", "rrdbnet": "rrdbnet_x4plus.pth", "compact": "compact_x4.pth"}
    for name in args.names:
        torch.manual_seed(0)
        torch.save({keys[name]: builders[name]().state_dict()}, Path(args.work) / names[name])
    return {"written": args.names}


def median_step(step, *, steps: int, warmup: int) -> tuple[float, float]:
    """Median wall seconds and mean CPU seconds (all threads) of one call after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    walls, cpu_start = [], time.process_time()
    for _ in range(steps):
        start = time.perf_counter()
        step()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), (time.process_time() - cpu_start) / steps


def pix2pix(args: argparse.Namespace) -> dict:
    """The reference step on i2i's unet_256 + PatchGAN, built with the same seed and init as i2i's
    side (the reference layout), fp32, torch's default Adam, the system allocator."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench_train import MODES
    from reference_pix2pix import ReferencePix2PixStep
    from sides_common import pix2pix_batch, pix2pix_config

    from i2i.trainer import Trainer

    task = Trainer(pix2pix_config(args, MODES["plain"])).setup_task()
    reference = ReferencePix2PixStep(task.networks["G"], task.networks["D"])
    a, b = pix2pix_batch(args)
    seconds, cpu = median_step(lambda: reference(a, b), steps=args.steps, warmup=args.warmup)
    return {"seconds": seconds, "cpu_seconds": cpu}


def srresnet(args: argparse.Namespace) -> dict:
    shim_functional_tensor()
    from basicsr.models.sr_model import SRModel
    from sides_common import sr_batch

    opt = {
        "num_gpu": 0, "is_train": True, "dist": False,
        "network_g": {"type": "MSRResNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 16, "upscale": 4},
        "path": {"pretrain_network_g": args.weights, "param_key_g": "params", "strict_load_g": True},
        "train": {
            "ema_decay": 0, "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
            "optim_g": {"type": "Adam", "lr": 2e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [250000] * 4, "restart_weights": [1] * 4, "eta_min": 1e-7},
        },
    }
    model = SRModel(opt)
    lq, gt = sr_batch(args)
    iteration = [0]

    def step() -> None:
        iteration[0] += 1
        model.feed_data({"lq": lq, "gt": gt})
        model.optimize_parameters(iteration[0])

    seconds, cpu = median_step(step, steps=args.steps, warmup=args.warmup)
    return {"seconds": seconds, "cpu_seconds": cpu}


def upsampler(args: argparse.Namespace):
    shim_functional_tensor()
    from realesrgan import RealESRGANer

    network = networks()[args.network]()
    return RealESRGANer(scale=4, model_path=args.weights, model=network, tile=0, tile_pad=10, pre_pad=0,
                        half=False, device=torch.device("cpu"))


def upscale(args: argparse.Namespace) -> dict:
    enhancer = upsampler(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    paths = sorted(Path(args.inputs).glob("*.png"))
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        output, _ = enhancer.enhance(image, outscale=4)
        cv2.imwrite(str(out / path.name), output)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start, "images": len(paths)}


def video(args: argparse.Namespace) -> dict:
    enhancer = upsampler(args)
    capture = cv2.VideoCapture(args.inputs)  # the metadata the script takes from ffprobe
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    reader = subprocess.Popen([args.ffmpeg, "-loglevel", "error", "-i", args.inputs, "-f", "rawvideo",
                               "-pix_fmt", "bgr24", "pipe:"], stdout=subprocess.PIPE)
    writer = subprocess.Popen([args.ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                               "-s", f"{width * 4}x{height * 4}", "-framerate", str(fps), "-i", "pipe:",
                               "-i", args.inputs, "-map", "0:v", "-map", "1:a", "-pix_fmt", "yuv420p",
                               "-vcodec", "libx264", "-acodec", "copy", args.out], stdin=subprocess.PIPE)
    frames = 0
    start = time.perf_counter()
    while True:
        data = reader.stdout.read(width * height * 3)
        if not data:
            break
        frame = np.frombuffer(data, np.uint8).reshape(height, width, 3)
        output, _ = enhancer.enhance(frame, outscale=4)
        writer.stdin.write(output.astype(np.uint8).tobytes())
        frames += 1
    reader.wait()
    writer.stdin.close()
    writer.wait()
    return {"seconds": time.perf_counter() - start, "frames": frames}


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["versions", "weights", "pix2pix", "srresnet", "upscale", "video"])
    parser.add_argument("names", nargs="*")
    for option in ("--work", "--weights", "--inputs", "--out", "--network", "--ffmpeg"):
        parser.add_argument(option, default="")
    for option, default in (("--size", 256), ("--batch", 1), ("--steps", 3), ("--warmup", 1)):
        parser.add_argument(option, type=int, default=default)
    args = parser.parse_intermixed_args()
    torch.set_grad_enabled(args.command in ("pix2pix", "srresnet"))
    result = globals()[args.command](args)
    result["shimmed"] = SHIMMED
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
