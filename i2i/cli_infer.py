"""Inference commands: translate and upscale images and folders, videos and frame folders, export."""
from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from i2i.cli_common import CONTEXT, user_errors
from i2i.errors import DataError, UsageError, VideoError

_PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # i2i.device.PRECISIONS, without importing torch
_BACKENDS = ("torch", "onnxruntime")  # i2i.inference.onnx_backend.BACKENDS
_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")  # video.PRESETS


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show library warnings (fp16 fallback, OOM retries, dropped audio) as one 'Warning:' line each."""

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        click.echo(f"Warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _inference_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """user_errors (i2i's errors as one line), with library warnings shown as lines."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _warnings_as_lines():
            return fn(*args, **kwargs)

    return user_errors(wrapper)


def _model_options(default_model: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option(
                "--model", "-m", required=default_model is None, default=default_model,
                show_default=default_model is not None,
                help="Generator file, run folder, a file from another project (*_net_G.pth, "
                "RealESRGAN_x4plus.pth, SwinIR ...), a pretrained name (`i2i models --pretrained`), "
                "or a URL (https://..., hf://ORG/REPO/FILE).",
            ),
            click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), help="Which generator of a two-way run."),
            click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 ... (auto: CUDA when available)."),
            click.option(
                "--tile", type=click.IntRange(min=0), default=None,
                help="Tile size in input pixels for images too large for the device; 0 never tiles "
                "(default: chosen from free memory when needed).",
            ),
            click.option("--tile-overlap", type=click.IntRange(min=0), default=32, show_default=True,
                         help="Overlap of neighbouring tiles in pixels, blended with feathering."),
            click.option("--batch-size", type=click.IntRange(min=1), default=None,
                         help="Same-size images (or tiles, or video frames) per device step (default: 4 on CUDA, 1 on CPU)."),
            click.option("--precision", type=click.Choice(_PRECISIONS), default="auto", show_default=True,
                         help="auto: fp16 on CUDA (fp32 again if it yields NaN/inf); on the CPU bf16 where it "
                         "computes bf16 natively (AVX512-BF16 or AMX; I2I_CPU_BF16=0 keeps fp32), else fp32."),
            click.option("--channels-last/--no-channels-last", default=None,
                         help="Channels-last memory format for the weights and the input (default: on)."),
            click.option("--backend", type=click.Choice(_BACKENDS), default="torch", show_default=True,
                         help="What runs the network: torch, or onnxruntime (fp32; exported to ONNX once and "
                         "kept under I2I_HOME, or a .onnx file from `i2i export` as --model; CPU, or CUDA and "
                         "TensorRT with onnxruntime-gpu)."),
            click.option("--compile", "compile_model", is_flag=True, help="torch.compile the generator (slow start, faster long runs)."),
            click.option("--outscale", type=float, default=None, metavar="S",
                         help="Resize the result to S x the input after the network (Lanczos), e.g. 2 or 3.5 "
                         "with an x4 model (default: the network's scale)."),
            click.option("--alpha", "alpha_mode", type=click.Choice(["bilinear", "model"]), default="bilinear",
                         show_default=True,
                         help="How an upscaler treats transparency: resize the alpha bilinearly, or run it "
                         "through the model as a gray image."),
            click.option("--norm-mode", type=click.Choice(["auto", "train", "eval"]), default="auto", show_default=True,
                         help="eval: BatchNorm uses the statistics stored in the file, dropout off. train: each "
                         "image is normalised with its own statistics and dropout stays on, as "
                         "pytorch-CycleGAN-and-pix2pix's test.py does without --eval (one whole image per step: "
                         "no --tile, no --batch-size). auto: train for that project's *_net_G.pth files with "
                         "BatchNorm or dropout, eval for everything else."),
            click.option("--seed", type=int, default=None,
                         help="Make dropout under --norm-mode train repeatable (default: random, as test.py)."),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _translator_options(kwargs: dict) -> dict:
    return dict(
        tile=kwargs.pop("tile"), tile_overlap=kwargs.pop("tile_overlap"), batch_size=kwargs.pop("batch_size"),
        precision=kwargs.pop("precision"), channels_last=kwargs.pop("channels_last"), compile=kwargs.pop("compile_model"),
        outscale=kwargs.pop("outscale"), alpha=kwargs.pop("alpha_mode"), norm_mode=kwargs.pop("norm_mode"),
        seed=kwargs.pop("seed"), backend=kwargs.pop("backend"),
    )


def _load_translators(model: str, direction: str | None, devices: list[str], options: dict, option: str = "--device") -> list:
    """One translator per device; every device is checked (DeviceError naming ``option``) before
    the model is loaded. Under torchrun, ``cuda`` and ``auto`` mean this process's GPU
    (``cuda:LOCAL_RANK``), and processes that share a machine's CPU share its cores."""
    from i2i.device import resolve_device
    from i2i.inference.runner import usable_cores
    from i2i.shard import current_shard
    from i2i.inference.translator import Translator

    options = dict(options)
    backend = options.pop("backend", "torch")
    shard = current_shard()
    resolved = [resolve_device(spec, option=option, local_rank=shard.local_rank) for spec in devices]
    if shard.world_size > 1 and resolved[0].type == "cpu":
        options["num_threads"] = max(1, usable_cores() // shard.local_world_size)
    if backend == "onnxruntime":
        from i2i.inference.onnx_backend import load_onnx_translator

        def announce(path: Path) -> None:
            click.echo(f"Exporting the model to ONNX once; later runs use {path}", err=True)

        load: Callable[..., Translator] = functools.partial(load_onnx_translator, on_export=announce)
    elif str(model).lower().endswith(".onnx"):
        raise UsageError(f"--model {model}: an ONNX file runs with --backend onnxruntime")
    else:
        load = Translator.from_file
    if not shard.is_main:  # rank 0 downloads and exports once, then the others load the same files
        shard.barrier()
    first = load(model, direction=direction, device=resolved[0], **options)
    if shard.is_main:
        shard.barrier()
    return [first] + [first.to_device(d) for d in resolved[1:]]


def _parse_devices(devices: str | None, device: str) -> tuple[list[str], str]:
    """``(device specs, the option they came from)``; GPU numbers become ``cuda:N``."""
    if not devices:
        return [device], "--device"
    parsed = []
    for part in devices.split(","):
        part = part.strip()
        if part.isdigit():
            parsed.append(f"cuda:{part}")
        elif part:
            parsed.append(part)
    if not parsed:
        raise UsageError(f"--devices {devices!r} names no device; give device numbers such as 0,1 (or cpu,cpu)")
    return parsed, "--devices"


def _folder_command(default_model: str | None, name: str) -> Callable[..., Any]:
    def run(
        model: str, input_path: Path, output_path: Path, direction: str | None, device: str, overwrite: bool,
        suffix: str, ext: str | None, quality: int | None, allow_inside_input: bool, max_pixels: int | None,
        **kwargs: Any,
    ) -> None:
        from i2i.data.io import max_pixel_limit
        from i2i.inference.folder import translate_path
        from i2i.shard import current_shard

        limit = max_pixel_limit(max_pixels)  # a bad I2I_MAX_PIXELS before the model is loaded
        translator = _load_translators(model, direction, [device], _translator_options(kwargs))[0]
        shard = current_shard()  # under torchrun each process translates its share of the files
        report = translate_path(
            translator, input_path, output_path, overwrite=overwrite, suffix=suffix, ext=ext, quality=quality,
            allow_inside_input=allow_inside_input, desc=name, max_pixels=limit, progress=shard.is_main, shard=shard,
        )
        report = _combined_report(shard.gather(report)) if shard.world_size > 1 else report
        if not shard.is_main:  # rank 0 speaks for every process; the exit status is the same
            if report.failed:
                sys.exit(1)
            return
        if input_path.is_file() and report.failed:  # one image: its problem is the one line
            path, reason = report.failed[0]
            raise DataError(reason if str(path) in reason else f"{path}: {reason}")
        _print_folder_report(report)

    return run


def _combined_report(reports: list) -> Any:
    """One report of every process's share, each list sorted by path."""
    combined = type(reports[0])()
    for part in reports:
        combined.written += part.written
        combined.skipped += part.skipped
        combined.failed += part.failed
        combined.notes += part.notes
    combined.unsupported = reports[0].unsupported  # every process lists the same folder
    for entries in (combined.written, combined.skipped, combined.failed, combined.notes):
        entries.sort(key=lambda entry: str(entry[0] if isinstance(entry, tuple) else entry))
    return combined


def _print_folder_report(report: Any) -> None:
    """The summary, then one line per failed file and per note; exit status 1 when any failed."""
    click.echo(report.summary())
    for path, note in report.notes:
        click.echo(f"  note: {path}: {note}", err=True)
    for path, reason in report.failed:
        click.echo(f"  failed: {path}: {reason}", err=True)
    if report.failed:
        sys.exit(1)


def _folder_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("input_path", type=click.Path(exists=True, path_type=Path)),
        click.argument("output_path", type=click.Path(path_type=Path)),
        click.option("--overwrite", is_flag=True, help="Replace outputs that already exist (never inputs)."),
        click.option("--suffix", default="", help="Appended to each output file name, before the extension."),
        click.option("--ext", default=None, help="Output format, e.g. png, jpg, webp, tif (default: the input's)."),
        click.option("--quality", type=click.IntRange(1, 100), default=None, help="JPEG/WebP quality."),
        click.option("--allow-inside-input", is_flag=True,
                     help="Allow the output folder to be (inside) the input folder; inputs are still never overwritten."),
        click.option("--max-pixels", type=click.IntRange(min=0), default=None, metavar="N",
                     help="Refuse images whose header declares more than N pixels, before decoding them "
                     "(default: I2I_MAX_PIXELS, else 268435456 = 16384 x 16384; 0: no limit)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.command(context_settings=CONTEXT)
@_model_options(None)
@_folder_options
@_inference_errors
def translate(**kwargs: Any) -> None:
    """Translate an image or a folder tree (recursive; the output mirrors it).

    Any image size works; the output has the input's size. Gray, RGBA and 16-bit images keep their
    form. Large images are tiled automatically (--tile to choose). Existing outputs are skipped
    unless --overwrite, so an interrupted run can simply be repeated. A file that fails is reported
    and the rest go on; the exit status is 1 if any failed. Files that are not images are left out
    and named in the summary. ICC profiles and EXIF are carried into JPEG, PNG and WebP outputs.

    \b
    Examples:
      i2i translate --model runs/pix2pix_demo photos/ out/
      i2i translate --model latest_net_G.pth facade.jpg facade_photo.png
      i2i translate --model facades_label2photo labels/ photos/ --seed 0   # test.py's train mode, repeatable
      i2i translate --model facades_label2photo labels/ photos/ --norm-mode eval  # as test.py --eval
      i2i translate -m gen.safetensors scans/ out/ --ext jpg --quality 92 --batch-size 8
      i2i translate -m gen.safetensors huge.tif out/ --tile 512 --tile-overlap 32
    """
    _folder_command(None, "translate")(**kwargs)


@click.command(context_settings=CONTEXT)
@_model_options("x4")
@_folder_options
@_inference_errors
def upscale(**kwargs: Any) -> None:
    """Upscale an image or a folder tree with a super-resolution generator (default: x4).

    The output is exactly scale x the input (or --outscale x); a gray image comes back gray, alpha
    is resized bilinearly (or upscaled by the model with --alpha model). Large images are tiled
    automatically (or with --tile). Same folder behaviour as `i2i translate`.

    \b
    Examples:
      i2i upscale photo.jpg photo_x4.png
      i2i upscale photos/ photos_x4/ --ext webp --quality 90
      i2i upscale -m runs/srgan_x4 scans/ big/ --tile 256 --precision fp16
      i2i upscale -m RealESRGAN_x4plus.pth photos/ x2/ --outscale 2 --alpha model
      i2i upscale -m realesr-animevideov3 photos/ photos_x4/ --backend onnxruntime
      torchrun --nproc-per-node 4 -m i2i upscale photos/ photos_x4/   # 4 processes share the files
    """
    _folder_command("x4", "upscale")(**kwargs)


@click.command(context_settings=CONTEXT)
@click.argument("input_path", type=click.Path(path_type=Path))
@click.argument("output_path", type=click.Path(path_type=Path))
@_model_options(None)
@click.option("--start", default=None, help="First frame: a frame number (120) or a time (5s, 1:30).")
@click.option("--end", default=None, help="Stop before this frame number or time (exclusive).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Frame rate when writing a folder of frames to a video.")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True, help="H.264 quality (lower is better).")
@click.option("--preset", default="medium", show_default=True,
              type=click.Choice(_PRESETS),
              help="x264 speed/size trade-off.")
@click.option("--compare", is_flag=True, help="Write the input (resized) and the output side by side.")
@click.option("--devices", default=None, help="Split the frames across devices, e.g. 0,1 (GPU numbers) or cpu,cpu.")
@click.option("--ffmpeg", "ffmpeg_path", default=None, help="ffmpeg binary (default: imageio-ffmpeg's, then PATH).")
@click.option("--no-ffmpeg", is_flag=True, help="Write with OpenCV instead (MPEG-4, no audio).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output video or existing output frames.")
@click.option("--ext", default=None, help="Image format of output frames (default: png from a video, the input's from frames).")
@click.option("--suffix", default="", help="Appended to frame names (frame folder to frame folder).")
@click.option("--quality", type=click.IntRange(1, 100), default=None, help="JPEG/WebP quality of output frames.")
@click.option("--segment-seconds", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
              help="Length of the closed segments a video output is written in; a rerun after an interruption "
              "redoes at most one per process (default: $I2I_VIDEO_SEGMENT_SECONDS, else 10).")
@_inference_errors
def video(
    input_path: Path, output_path: Path, model: str, direction: str | None, device: str, start: str | None,
    end: str | None, fps: float | None, crf: int, preset: str, compare: bool, devices: str | None,
    ffmpeg_path: str | None, no_ffmpeg: bool, overwrite: bool, ext: str | None, suffix: str, quality: int | None,
    segment_seconds: float | None, **kwargs: Any,
) -> None:
    """Translate a video, or a folder of numbered frames, into a video or a folder of frames.

    A video output has every frame once, each at its source time (a variable-rate video keeps its
    timing), and the audio and subtitles (copied, not re-encoded). It is H.264 MP4 written by
    ffmpeg (imageio-ffmpeg ships one) with the source's colour tags (matrix, range, primaries,
    transfer); a source of more than 8 bits, or a folder of 16-bit frames, gives 10-bit H.264.
    Without ffmpeg, OpenCV writes 8-bit MPEG-4 and the audio is dropped. A folder output holds one
    image per frame. Frame folders are read in numeric order.

    Resuming: a video is written in closed segments in OUTPUT.parts/ and joined losslessly at the
    end; after an error, Ctrl-C or SIGTERM, run the same command again and it continues from the
    first missing segment. A frame folder output skips the frames already there.

    Under torchrun each process translates its own stretch of the frames; rank 0 joins the video
    and prints the report.

    \b
    Examples:
      i2i video clip.mp4 clip_x4.mp4 --model x4
      i2i video clip.mp4 clip_zebra.mp4 -m runs/cyclegan_h2z --direction AtoB --start 10s --end 20s
      i2i video clip.mp4 compare.mp4 -m x4 --compare --crf 20 --preset fast
      i2i video frames/ frames_x4/ -m x4                  # a frame folder to a frame folder
      i2i video frames/ out.mp4 -m x4 --fps 23.976        # a frame folder to a video
      i2i video clip.mp4 frames_out/ -m x4 --end 100      # a video to frames
      i2i video film.mkv film_x4.mkv -m x4 --devices 0,1  # split across two GPUs, joined losslessly
      i2i video film.mkv film_x4.mkv -m x4 --segment-seconds 30   # interrupted? run it again to resume
      torchrun --standalone --nproc-per-node 2 -m i2i video film.mkv film_x4.mkv -m x4
    """
    from i2i.inference.folder import FolderReport
    from i2i.shard import current_shard
    from i2i.inference.video import VideoOptions, translate_frames, translate_video

    if no_ffmpeg and ffmpeg_path:
        raise UsageError("give either --ffmpeg PATH or --no-ffmpeg, not both")
    if not input_path.exists():
        raise VideoError(f"Input {str(input_path)!r} does not exist.")
    if fps is not None and not input_path.is_dir():
        raise UsageError("--fps is for frame folders; a video keeps its own frame rate")
    shard = current_shard()
    options = VideoOptions(
        start=start, end=end, fps=fps, crf=crf, preset=preset, compare=compare,
        ffmpeg=None if no_ffmpeg else (ffmpeg_path or "auto"), overwrite=overwrite, ext=ext, suffix=suffix,
        quality=quality, segment_seconds=segment_seconds, progress=shard.is_main,
    )
    specs, option = _parse_devices(devices, device)
    translators = _load_translators(model, direction, specs, _translator_options(kwargs), option)
    with warnings.catch_warnings():
        if not shard.is_main:  # every process meets the same caveats; rank 0 tells them once
            warnings.simplefilter("ignore")
        translate = translate_frames if input_path.is_dir() else translate_video
        report = translate(translators, input_path, output_path, options)
    if shard.world_size > 1 and isinstance(report, FolderReport):  # a frame folder's shares
        report = _combined_report(shard.gather(report))
    if not shard.is_main:  # rank 0 speaks for every process; the exit status is the same
        if isinstance(report, FolderReport) and report.failed:
            sys.exit(1)
        return
    _print_video_report(report)


def _print_video_report(report: Any) -> None:
    from i2i.inference.folder import FolderReport

    if isinstance(report, FolderReport):
        _print_folder_report(report)
        return
    for note in report.notes:
        click.echo(f"Note: {note}", err=True)
    speed = report.frames / report.seconds if report.seconds else 0.0
    if report.encoder == "frames":
        click.echo(f"{report.frames} frames written, {report.skipped} skipped (exist) to {report.output} ({speed:.1f} frames/s).")
        return
    rate = float(report.fps) if report.fps else 0.0
    width, height = report.size or (0, 0)
    sound = "audio copied" if report.audio else "no audio"
    click.echo(
        f"Wrote {report.output}: {report.frames} frames, {width}x{height}, {rate:.3f} fps, {report.encoder}, "
        f"{sound} ({speed:.1f} frames/s)."
    )


@click.command(context_settings=CONTEXT)
@click.option("--model", "-m", required=True, help="Generator file, training run folder, or official *_net_G.pth.")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Output file (default: next to the model, .onnx or .pt).")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), help="Which generator of a two-way run.")
@click.option("--opset", type=click.IntRange(min=11), default=17, show_default=True, help="ONNX opset version.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file (never the model being exported).")
@_inference_errors
def export(model: str, fmt: str, output: Path | None, direction: str | None, opset: int, overwrite: bool) -> None:
    """Export a generator to ONNX or TorchScript with dynamic batch, height and width.

    The graph pads to the generator's size multiple and crops back, so any size works. Input and
    output are (B, C, H, W) float32 in the generator's value range ([-1, 1], or [0, 1] for SR);
    the generator's description is stored in the file (ONNX metadata "i2i", TorchScript extra
    file i2i.json).

    \b
    Examples:
      i2i export --model runs/pix2pix_demo                        # runs/pix2pix_demo/generator.onnx
      i2i export --model gen.safetensors --format torchscript -o gen.pt
    """
    from i2i.inference.export import default_export_path, export_generator

    target = output or default_export_path(model, fmt)
    path = export_generator(model, target, format=fmt, direction=direction, opset=opset, overwrite=overwrite)
    click.echo(f"Wrote {path}")
