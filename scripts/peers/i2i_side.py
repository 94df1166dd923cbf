"""i2i's side of each comparison, one per process, with i2i's defaults for the device; prints one
JSON line. (The video comparison runs ``i2i video`` itself, so it has no command here.)

* ``pix2pix``: the trainer's pix2pix task (paper recipe), ``train_step`` on a fixed batch;
* ``srresnet``: the srgan task's stage 1 (``stage: psnr``) starting from the BasicSR MSRResNet file
  (``init_from``, which builds i2i's srresnet variant with BasicSR's layout), L1, Adam with
  BasicSR's lr 2e-4 and betas (0.9, 0.99);
* ``upscale``: the folder processor ``i2i upscale`` calls (``Translator.from_file``, or
  ``load_onnx_translator`` with ``--backend onnxruntime``, + ``translate_path``) on the peers' weight
  file, at the precision and memory format asked for (``--precision``, ``--no-channels-last``: the
  same flags as ``i2i upscale``);
* ``export``: the ONNX export ``--backend onnxruntime`` makes on its first run, cached under
  ``$I2I_HOME/onnx/`` beforehand so that no timed run includes it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_side import median_step  # noqa: E402  (one timing rule for both sides)
from sides_common import pix2pix_batch, pix2pix_config, sr_batch  # noqa: E402


def timed_task(config, batch: dict, args: argparse.Namespace) -> dict:
    from i2i.trainer import Trainer

    trainer = Trainer(config)
    task, context = trainer.setup_task(), trainer.context

    def step() -> None:
        with context.autocast():
            task.train_step(batch)
        context.end_iteration()

    seconds, cpu = median_step(step, steps=args.steps, warmup=args.warmup)
    return {"seconds": seconds, "cpu_seconds": cpu}


def pix2pix(args: argparse.Namespace) -> dict:
    a, b = pix2pix_batch(args)
    return timed_task(pix2pix_config(args, {}), {"a": a, "b": b}, args)


def srresnet(args: argparse.Namespace) -> dict:
    import i2i.tasks  # noqa: F401  (the tasks register their config sections)
    from i2i.config import parse_config

    config = parse_config({
        "task": {"name": "srgan", "stage": "psnr", "init_from": args.weights, "pixel_criterion": "l1",
                 "lr": 2e-4, "beta1": 0.9, "beta2": 0.99},
        "data": {"crop_size": args.size, "load_size": args.size, "batch_size": args.batch},
        "train": {"device": "cpu"},
    })
    lr, hr = sr_batch(args)
    return timed_task(config, {"a": lr, "b": hr}, args)


def upscale(args: argparse.Namespace) -> dict:
    from i2i.inference.folder import translate_path

    exported: list[str] = []
    options = {"device": "cpu", "precision": args.precision, "channels_last": False if args.no_channels_last else None}
    if args.backend == "onnxruntime":
        from i2i.inference.onnx_backend import load_onnx_translator

        translator = load_onnx_translator(args.weights, on_export=lambda path: exported.append(str(path)), **options)
    else:
        from i2i.inference.translator import Translator

        translator = Translator.from_file(args.weights, **options)
    start, cpu_start = time.perf_counter(), time.process_time()
    translate_path(translator, args.inputs, args.out, overwrite=True, progress=False)
    images = len(list(Path(args.inputs).glob("*.png")))
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start, "images": images,
            "exported": bool(exported)}


def export(args: argparse.Namespace) -> dict:
    """Cache the ONNX export of ``--weights`` under ``$I2I_HOME/onnx/`` (what the first
    ``--backend onnxruntime`` run would do), timed apart from the comparison."""
    from i2i.checkpoint import load_generator
    from i2i.inference.onnx_backend import cached_onnx

    start = time.perf_counter()
    module, info = load_generator(args.weights)
    path = cached_onnx(module, info)
    return {"seconds": time.perf_counter() - start, "path": str(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["pix2pix", "srresnet", "upscale", "export"])
    for option, default in (("--weights", ""), ("--inputs", ""), ("--out", ""), ("--precision", "auto"), ("--backend", "torch")):
        parser.add_argument(option, default=default)
    parser.add_argument("--no-channels-last", action="store_true", help="keep weights and input in NCHW")
    for option, default in (("--size", 256), ("--batch", 1), ("--steps", 3), ("--warmup", 1)):
        parser.add_argument(option, type=int, default=default)
    args = parser.parse_args()
    torch.set_grad_enabled(args.command not in ("upscale", "export"))
    print(json.dumps(globals()[args.command](args)), flush=True)


if __name__ == "__main__":
    main()
