"""Options users of Real-ESRGAN expect, end to end from the command line: --outscale, gray in gray
out, --alpha model, 16-bit in 16-bit out, and --outscale for videos."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from conftest import run_cli as run
from i2i.data.io import read_image, write_image
from test_folder import sr_from_file  # noqa: F401 - fixture
from test_translator import photo
from test_video import clip, decode  # noqa: F401 - fixture



def test_outscale_gray_alpha_and_depth_from_the_cli(tmp_path: Path, sr_from_file) -> None:
    src = tmp_path / "in"
    write_image(src / "gray.png", photo(10, 12, channels=1))
    write_image(src / "deep.png", photo(10, 12, dtype=np.uint16))
    rgba = np.concatenate([photo(10, 12), photo(10, 12, channels=1)], axis=2)
    write_image(src / "alpha.png", rgba)

    run("upscale", "--model", "tiny", src, tmp_path / "x2")  # the tiny upscaler is x2
    assert read_image(tmp_path / "x2" / "gray.png").shape == (20, 24, 1)
    deep = read_image(tmp_path / "x2" / "deep.png")
    assert deep.dtype == np.uint16 and deep.shape == (20, 24, 3)

    run("upscale", "--model", "tiny", "--outscale", "1.5", src, tmp_path / "x1.5")
    for name, channels in (("gray.png", 1), ("deep.png", 3), ("alpha.png", 4)):
        assert read_image(tmp_path / "x1.5" / name).shape == (15, 18, channels)

    run("upscale", "--model", "tiny", "--alpha", "model", src, tmp_path / "alpha")
    assert read_image(tmp_path / "alpha" / "alpha.png").shape == (20, 24, 4)

    result = run("upscale", "--model", "tiny", "--outscale", "-1", src, tmp_path / "bad", code=2)
    assert "--outscale must be a positive factor" in result.output and "Traceback" not in result.output


def test_video_outscale_sets_the_frame_size(clip, tmp_path: Path, sr_from_file) -> None:  # noqa: F811
    out = tmp_path / "out.mp4"
    run("video", "--model", "tiny", "--outscale", "1.5", "--end", "4", clip, out)
    frames = decode(out)
    assert len(frames) == 4 and frames[0].shape == (72, 96, 3)  # 64x48 x 1.5
    sources = decode(clip, count=5)
    small = [cv2.resize(frame, (64, 48), interpolation=cv2.INTER_AREA).astype(int) for frame in frames]
    # The identity upscaler, Lanczos and H.264 blur a little; each frame is still its own source's.
    aligned = [np.abs(s - src.astype(int)).mean() for s, src in zip(small, sources)]
    shifted = [np.abs(s - src.astype(int)).mean() for s, src in zip(small, sources[1:])]
    assert max(aligned) < 8 and np.mean(aligned) < 0.6 * np.mean(shifted), (aligned, shifted)
