"""Hostile and unlucky input at the file edge: decompression bombs, video names that look like URLs,
outputs that collide, combine over existing files, broken weights, multi-frame images, full disks."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import run_cli as run
from i2i import files as files_module
from i2i.checkpoint import GeneratorInfo, save_generator
from i2i.cli_data import data_group
from i2i.data import io as io_module
from i2i.data.combine import combine_folders
from i2i.data.io import ImageReadError, read_image, write_image
from i2i.errors import DataError, ModelError, VideoError
from i2i.inference import folder as folder_module
from i2i.inference.ffmpeg import find_ffmpeg
from i2i.inference.folder import plan_outputs, translate_path
from i2i.inference.translator import Translator
from i2i.inference.video import VideoOptions, translate_frames, translate_video
from i2i.models import create_model
from test_folder import sr_from_file  # noqa: F401 - fixture
from test_translator import PixelSR, photo, sr_info, tiny_sr

FFMPEG = find_ffmpeg()
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="no ffmpeg binary (pip install imageio-ffmpeg)")



def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "Error:" in line]


def everything(folder: Path) -> list[str]:
    """Every file below ``folder``, hidden ones included (temporary files would show here)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ----------------------------------------------------------------------------- 3a: decompression bombs


def zeros_zlib(count: int) -> bytes:
    """A zlib stream of ``count`` zero bytes, built from one repeated deflate block (fast for any size)."""
    chunk = 1 << 20
    block_maker = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = block_maker.compress(bytes(chunk)) + block_maker.flush(zlib.Z_FULL_FLUSH)
    tail_maker = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = tail_maker.compress(bytes(count % chunk)) + tail_maker.flush()
    adler = ((count % 65521) << 16) | 1  # Adler-32 of zeros: a = 1, b = count
    return b"\x78\xda" + block * (count // chunk) + tail + adler.to_bytes(4, "big")


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A complete, valid 8-bit gray PNG of zeros: tiny on disk, ``width * height`` bytes decoded."""
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    data = zeros_zlib(height * (width + 1))  # each row: filter byte 0 + zeros
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b""))
    return path


def test_the_zlib_helper_makes_real_data():
    assert zlib.decompress(zeros_zlib(3 * (1 << 20) + 17)) == bytes(3 * (1 << 20) + 17)
    assert zlib.decompress(zeros_zlib(5)) == bytes(5)


def test_a_png_bomb_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    side = 17000  # 289 megapixels: above the default limit, below OpenCV's own (1 gigapixel)
    bomb = bomb_png(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 400_000 and side * side > io_module.DEFAULT_MAX_PIXELS

    def no_decoding(*args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(io_module.cv2, "imdecode", no_decoding)
    with pytest.raises(ImageReadError) as info:
        read_image(bomb)
    message = str(info.value)
    assert "bomb.png" in message and "17000x17000" in message
    assert "--max-pixels" in message and "I2I_MAX_PIXELS" in message


def test_a_png_bomb_stays_in_bounded_memory(tmp_path):
    """In a fresh process, refusing a 289-megapixel PNG raises the peak memory by far less than its size."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak memory")
    bomb = bomb_png(tmp_path / "bomb.png", 17000, 17000)
    script = (
        "from i2i.data.io import read_image, ImageReadError\n"
        "def peak():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
        "open('/proc/self/clear_refs', 'w').write('5')  # the peak starts again from here\n"
        "before = peak()\n"
        "try:\n"
        f"    read_image({str(bomb)!r})\n"
        "    print('decoded', peak() - before)\n"
        "except ImageReadError:\n"
        "    print('refused', peak() - before)\n"
    )
    root = Path(__file__).resolve().parents[1]  # this checkout's i2i, whatever the current folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.stdout.startswith("refused"), result.stdout + result.stderr
    assert int(result.stdout.split()[1]) < 50 * 1024  # KiB; decoding needs 289 MB for the pixels alone


def test_the_pixel_limit_is_per_file_in_a_folder_and_can_be_raised(tmp_path, monkeypatch, sr_from_file):
    write_image(tmp_path / "in" / "fine.png", photo(20, 30))
    bomb_png(tmp_path / "in" / "big.png", 1500, 1500)  # 2.25 megapixels
    report = translate_path(tiny_sr(), tmp_path / "in", tmp_path / "out", progress=False, max_pixels=1_000_000)
    assert [p.name for p in report.written] == ["fine.png"]
    assert [p.name for p, _ in report.failed] == ["big.png"] and "1500x1500" in report.failed[0][1]

    result = run("upscale", tmp_path / "in", tmp_path / "cli", "--max-pixels", "1000000", code=1)
    assert "1 written" in result.output and "big.png" in result.output and "Traceback" not in result.output
    monkeypatch.setenv("I2I_MAX_PIXELS", "1000000")
    result = run("upscale", tmp_path / "in" / "big.png", tmp_path / "one.png", code=1)
    assert len(error_lines(result.output)) == 1 and "big.png" in error_lines(result.output)[0]
    assert "written" not in result.output  # a single file: one line, no folder summary
    monkeypatch.setenv("I2I_MAX_PIXELS", "3000000")  # raised: the image is translated
    run("upscale", tmp_path / "in" / "big.png", tmp_path / "one.png")
    assert read_image(tmp_path / "one.png", max_pixels=0).shape == (3000, 3000, 1)
    monkeypatch.setenv("I2I_MAX_PIXELS", "lots")
    result = run("upscale", tmp_path / "in" / "big.png", tmp_path / "two.png", code=2)
    assert "I2I_MAX_PIXELS" in result.output and "Traceback" not in result.output


def test_header_sizes_of_every_format_are_read_without_decoding(tmp_path, monkeypatch):
    from i2i.data.headers import stored_size

    image = photo(23, 37)
    for ext in (".png", ".jpg", ".bmp", ".tif", ".webp"):
        write_image(tmp_path / f"x{ext}", image)
        assert stored_size((tmp_path / f"x{ext}").read_bytes()) == (37, 23), ext
    Image.fromarray(image).save(tmp_path / "x.gif")
    assert stored_size((tmp_path / "x.gif").read_bytes()) == (37, 23)
    Image.fromarray(image).save(tmp_path / "big.tif", compression="tiff_deflate", bigtiff=True)
    assert stored_size((tmp_path / "big.tif").read_bytes()) == (37, 23)
    Image.fromarray(image).save(tmp_path / "lossless.webp", lossless=True)
    assert stored_size((tmp_path / "lossless.webp").read_bytes()) == (37, 23)
    monkeypatch.setattr(io_module.cv2, "imdecode", lambda *a: pytest.fail("decoded"))
    for ext in (".jpg", ".bmp", ".tif", ".webp", ".gif"):
        path = tmp_path / f"x{ext}"
        with pytest.raises(ImageReadError, match="37x23"):
            read_image(path, max_pixels=100)


# ----------------------------------------------------------------------------- 3c: video names like URLs


def write_clip(path: Path, width: int, height: int, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path.resolve()), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (width, height))
    base = photo(height, width + frames * 4)
    for i in range(frames):
        writer.write(cv2.cvtColor(np.ascontiguousarray(base[:, i * 4 : i * 4 + width]), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_a_video_named_like_a_protocol_is_read_as_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "concat:something.mp4", 32, 24, 5)
    write_clip(tmp_path / "other.mp4", 16, 16, 3)  # what "file:other.mp4" would read as a URL
    write_clip(tmp_path / "file:other.mp4", 32, 24, 7)
    options = VideoOptions(progress=False)
    report = translate_video(tiny_sr(), Path("concat:something.mp4"), Path("frames_a"), options)
    assert report.frames == 5 and read_image(tmp_path / "frames_a" / "frame_000000.png").shape == (48, 64, 3)
    report = translate_video(tiny_sr(), Path("file:other.mp4"), Path("frames_b"), options)
    assert report.frames == 7 and read_image(tmp_path / "frames_b" / "frame_000000.png").shape == (48, 64, 3)


@needs_ffmpeg
def test_ffmpeg_reads_and_writes_protocol_names_as_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # other.mp4 has a sound track; the silent "file:other.mp4" must not borrow it.
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=16x16:rate=12:duration=1", "-f", "lavfi",
         "-i", "sine=duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "other.mp4"],
        check=True,
    )
    write_clip(tmp_path / "file:other.mp4", 32, 24, 7)
    report = translate_video(tiny_sr(), Path("file:other.mp4"), Path("file:out.mp4"), VideoOptions(progress=False))
    assert (tmp_path / "file:out.mp4").is_file() and report.frames == 7 and not report.audio
    assert report.size == (64, 48)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


# ----------------------------------------------------------------------------- 4: output collisions


def test_outputs_that_collide_are_refused_before_anything_is_written(tmp_path, sr_from_file):
    write_image(tmp_path / "in" / "a.png", photo(8, 8))
    write_image(tmp_path / "in" / "a.jpg", photo(8, 8))
    write_image(tmp_path / "in" / "b.png", photo(8, 8))
    with pytest.raises(DataError) as info:
        plan_outputs(tmp_path / "in", tmp_path / "out", ext="webp")
    message = str(info.value)
    assert "a.webp" in message and "a.png" in message and "a.jpg" in message and "b.png" not in message
    result = run("upscale", tmp_path / "in", tmp_path / "out", "--ext", "webp", code=1)
    assert "a.webp" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_outputs_differing_only_by_case_collide_where_the_disk_ignores_case(tmp_path, monkeypatch):
    write_image(tmp_path / "in" / "A.png", photo(8, 8))
    write_image(tmp_path / "in" / "a.jpg", photo(8, 8))
    assert folder_module._ignores_case(tmp_path) is (os.path.exists(str(tmp_path).upper()))
    if not folder_module._ignores_case(tmp_path):  # this disk keeps A.webp and a.webp apart
        assert len(plan_outputs(tmp_path / "in", tmp_path / "out", ext="webp")) == 2
    monkeypatch.setattr(folder_module, "_ignores_case", lambda folder: True)
    with pytest.raises(DataError, match="case"):
        plan_outputs(tmp_path / "in", tmp_path / "out", ext="webp")


# ----------------------------------------------------------------------------- 6: combine over existing files


def test_combine_never_overwrites_without_permission_and_never_an_input(tmp_path):
    a, b, out = tmp_path / "A", tmp_path / "B", tmp_path / "out"
    for name in ("1", "2"):
        write_image(a / f"{name}.png", np.full((4, 4, 3), 10, np.uint8))
        write_image(b / f"{name}.png", np.full((4, 4, 3), 200, np.uint8))
    out.mkdir()
    (out / "1.png").write_bytes(b"the user's own file")
    with pytest.raises(DataError) as info:
        combine_folders(a, b, out)
    assert "1.png" in str(info.value) and "--overwrite" in str(info.value)
    assert everything(out) == ["1.png"] and (out / "1.png").read_bytes() == b"the user's own file"
    result = CliRunner().invoke(data_group, ["combine", str(a), str(b), str(out)])
    assert result.exit_code == 1 and "--overwrite" in result.output and "Traceback" not in result.output

    result = CliRunner().invoke(data_group, ["combine", str(a), str(b), str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert read_image(out / "1.png").shape == (4, 8, 3) and everything(out) == ["1.png", "2.png"]

    (out / "2.png").unlink()
    (out / "2.png").symlink_to(a / "2.png")  # an output name that leads to an input
    with pytest.raises(DataError, match="input"):
        combine_folders(a, b, out, overwrite=True)
    assert read_image(a / "2.png").shape == (4, 4, 3)


# ----------------------------------------------------------------------------- 13: broken weights


def nan_generator(tmp_path: Path) -> Path:
    kwargs = dict(in_channels=3, out_channels=3, base_channels=4, num_blocks=1, norm="batch")
    model = create_model("resnet", **kwargs)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    path = tmp_path / "diverged.safetensors"
    save_generator(path, model, GeneratorInfo(model="resnet", kwargs=kwargs))
    return path


def test_a_model_with_nan_weights_stops_the_run_naming_its_file(tmp_path):
    model = nan_generator(tmp_path)
    write_image(tmp_path / "in" / "a.png", photo(16, 16))
    write_image(tmp_path / "in" / "b.png", photo(16, 16))
    with pytest.raises(ModelError, match="diverged.safetensors.*NaN"):
        translate_path(Translator.from_file(model), tmp_path / "in", tmp_path / "out", progress=False)
    result = run("translate", "-m", model, tmp_path / "in", tmp_path / "cli", code=1)
    lines = error_lines(result.output)
    assert len(lines) == 1 and "diverged.safetensors" in lines[0] and "Traceback" not in result.output
    assert everything(tmp_path / "cli") == [] and everything(tmp_path / "out") == []


class AlwaysNan(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = PixelSR()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * float("nan")


def test_half_precision_falls_back_first_and_only_fp32_nan_blames_the_weights():
    image = photo(9, 11)
    with pytest.warns(RuntimeWarning, match="fp32"), pytest.raises(ModelError, match="NaN"):
        Translator(AlwaysNan(), sr_info(), precision="bf16").translate_image(image)
    with pytest.raises(ModelError, match="weights"):
        Translator(AlwaysNan(), sr_info(), precision="fp32").translate_image(image)
    assert tiny_sr().translate_image(image).shape == (18, 22, 3)  # a healthy model is untouched


# ----------------------------------------------------------------------------- 14: multi-frame files


def test_multi_frame_inputs_are_noted_in_the_summary(tmp_path, sr_from_file):
    frames = [Image.fromarray(photo(12, 16) // (i + 1)) for i in range(3)]
    src = tmp_path / "in"
    src.mkdir()
    frames[0].save(src / "pages.tif", save_all=True, append_images=frames[1:])
    frames[0].save(src / "anim.png", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    (src / "gif_inside.png").write_bytes((tmp_path / "anim.gif").read_bytes())
    frames[0].save(src / "anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    frames[0].save(src / "single.tif")
    write_image(src / "plain.png", photo(12, 16))
    report = translate_path(tiny_sr(), src, tmp_path / "out", progress=False)
    assert len(report.written) == 6 and not report.failed
    notes = {path.name: text for path, text in report.notes}
    assert set(notes) == {"pages.tif", "anim.png", "gif_inside.png", "anim.webp"}
    assert all("first of 3 frames" in text for text in notes.values())
    result = run("upscale", src, tmp_path / "cli")
    assert "first of 3 frames" in result.output and "pages.tif" in result.output


# ----------------------------------------------------------------------------- 11: full or read-only disks


def disk_full(monkeypatch, code: int = errno.ENOSPC) -> None:
    """Every file write fails after its bytes went to the temporary file, as on a full disk."""

    def fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files_module.os, "fsync", fsync)


def test_a_full_disk_stops_a_folder_run_with_one_line_and_no_partial_files(tmp_path, monkeypatch, sr_from_file):
    for i in range(4):
        write_image(tmp_path / "in" / f"{i}.png", photo(10, 10))
    disk_full(monkeypatch)
    with pytest.raises(DataError, match="no space left"):
        translate_path(tiny_sr(), tmp_path / "in", tmp_path / "out", progress=False)
    result = run("upscale", tmp_path / "in", tmp_path / "cli", code=1)
    lines = error_lines(result.output)
    assert len(lines) == 1 and "ENOSPC" in lines[0] and str(tmp_path / "cli") in lines[0]
    assert "failed:" not in result.output and "Traceback" not in result.output
    assert everything(tmp_path / "out") == [] and everything(tmp_path / "cli") == []


def test_a_read_only_disk_is_one_line(tmp_path, monkeypatch, sr_from_file):
    write_image(tmp_path / "in" / "a.png", photo(10, 10))

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(files_module, "tempfile", SimpleNamespace(mkstemp=read_only))
    result = run("upscale", tmp_path / "in", tmp_path / "out", code=1)
    assert len(error_lines(result.output)) == 1 and "read-only" in result.output and "Traceback" not in result.output


def test_a_folder_without_write_permission_is_one_line(tmp_path, sr_from_file):
    write_image(tmp_path / "in" / "a.png", photo(10, 10))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions do not stop writes")
        result = run("upscale", tmp_path / "in", locked / "out", code=1)
        assert len(error_lines(result.output)) == 1 and "permission" in result.output.lower()
    finally:
        locked.chmod(0o755)


def test_a_full_disk_during_video_to_frames_is_one_line(tmp_path, monkeypatch, sr_from_file):
    clip = write_clip(tmp_path / "clip.mp4", 32, 24, 6)
    disk_full(monkeypatch)
    with pytest.raises(VideoError, match="frame_000000.png.*no space left"):
        translate_video(tiny_sr(), clip, tmp_path / "frames", VideoOptions(progress=False))
    result = run("video", clip, tmp_path / "cli", "-m", "x2", code=1)
    assert len(error_lines(result.output)) == 1 and "Traceback" not in result.output
    assert everything(tmp_path / "frames") == [] and everything(tmp_path / "cli") == []


def test_a_full_disk_during_combine_is_one_line(tmp_path, monkeypatch):
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(a / "1.png", np.zeros((4, 4, 3), np.uint8))
    write_image(b / "1.png", np.zeros((4, 4, 3), np.uint8))
    disk_full(monkeypatch, errno.EDQUOT)
    result = CliRunner().invoke(data_group, ["combine", str(a), str(b), str(tmp_path / "out")])
    assert result.exit_code == 1 and "quota" in result.output and "Traceback" not in result.output
    assert everything(tmp_path / "out") == []


def test_frame_folder_translation_stops_on_a_full_disk(tmp_path, monkeypatch):
    for i in range(3):
        write_image(tmp_path / "frames" / f"f{i}.png", photo(10, 10))
    disk_full(monkeypatch)
    with pytest.raises(DataError, match="ENOSPC"):
        translate_frames(tiny_sr(), tmp_path / "frames", tmp_path / "out", VideoOptions(progress=False))
    assert everything(tmp_path / "out") == []
