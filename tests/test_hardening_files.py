"""Files from outside, built to do harm: archive tricks, model files that exhaust memory,
discriminators and damaged metadata passed as generators, exports over their own input.

Every refusal is one line naming the file, the problem and the fix, and leaves nothing behind.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import textwrap
import threading
import zipfile
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file
from torch import nn

from i2i.checkpoint import GeneratorInfo, load_generator, save_generator
from i2i.cli import main
from i2i.cli_data import data_group
from i2i.errors import ModelError
from i2i.models import create_model


def _png(value: int) -> bytes:
    ok, buffer = cv2.imencode(".png", np.full((4, 8, 3), value, np.uint8))
    assert ok
    return buffer.tobytes()


def _error_line(output: str) -> str:
    """The one ``Error:`` line the CLI printed, checked to be the only one and the last line."""
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], output
    assert "Traceback" not in output
    return errors[0]


# ============================================================================= archives


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                 "I2I_DATASETS_URL", "I2I_EXTRACT_MAX_BYTES", "I2I_EXTRACT_MAX_FILES"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1: ``(folder, url)``."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _add(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "",
         data: bytes = b"", mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = kind, link, mode, len(data)
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
    tar.addfile(info, io.BytesIO(data) if data else None)


def _tar(path: Path, build: Callable[[tarfile.TarFile], None]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "facades/train/1.png", data=_png(1))  # a real data set file comes first
        build(tar)


def _cve_2025_4517_chain(tar: tarfile.TarFile, staging_prefix: int) -> None:
    """The published CVE-2025-4517 pattern: sixteen links to long folder names make the link
    below them resolve, physically, to the extraction folder, while ``os.path.realpath`` gives
    up (the path it builds is longer than PATH_MAX) and judges the rest lexically. ``escape``
    then points two levels above the extraction folder, although every check reads it as inside,
    and ``escape/victim.txt`` overwrites a file there."""
    steps = "abcdefghijklmnop"
    long_name = "d" * min(247, (4096 - staging_prefix - 60) // len(steps) - 1)
    folder = ""
    for step in steps:
        _add(tar, os.path.join(folder, long_name), tarfile.DIRTYPE, mode=0o755)
        _add(tar, os.path.join(folder, step), tarfile.SYMTYPE, link=long_name)
        folder = os.path.join(folder, long_name)
    inner = os.path.join(*steps, "l" * 254)
    _add(tar, inner, tarfile.SYMTYPE, link=os.path.join(*[".."] * len(steps)))
    _add(tar, "escape", tarfile.SYMTYPE, link=inner + "/../..")
    _add(tar, "escape/victim.txt", data=b"overwritten through the link chain")


def _dot_links(tar: tarfile.TarFile) -> None:
    """Enough on Python < 3.10.12 / 3.11.4 (no extraction filter): four links to ``.`` make
    ``a/b/c/d/e -> ../../../..`` look like ``.`` to a lexical check, but it is four levels up."""
    for name in ("a", "a/b", "a/b/c", "a/b/c/d"):
        _add(tar, name, tarfile.SYMTYPE, link=".")
    _add(tar, "a/b/c/d/e", tarfile.SYMTYPE, link="../../../..")
    _add(tar, "a/b/c/d/e/victim.txt", data=b"overwritten through dot links")


def _zip(path: Path, name: str, data: bytes, unix_mode: int = 0) -> None:
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("horse2zebra/trainA/a.png", _png(1))
        info = zipfile.ZipInfo(name)
        info.external_attr = unix_mode << 16
        bundle.writestr(info, data)


def _make_trick(trick: str, served_folder: Path, sandbox: Path, root: Path) -> str:
    """Write the archive for ``trick`` into the served folder; returns the data set name."""
    outside = sandbox / "victim.txt"
    tars: dict[str, Callable[[tarfile.TarFile], None]] = {
        "tar-symlink-escape": lambda t: (
            _add(t, "facades/train/up", tarfile.SYMTYPE, link="../../../.."),
            _add(t, "facades/train/up/victim.txt", data=b"overwritten through a symlink")),
        "tar-symlink-absolute": lambda t: (
            _add(t, "facades/train/abs", tarfile.SYMTYPE, link=str(sandbox)),
            _add(t, "facades/train/abs/victim.txt", data=b"overwritten through a symlink")),
        "tar-symlink-inside": lambda t: _add(t, "facades/train/2.png", tarfile.SYMTYPE, link="1.png"),
        "tar-hardlink-escape": lambda t: (
            _add(t, "facades/train/hard", tarfile.LNKTYPE, link=str(outside)),
            _add(t, "facades/train/hard", data=b"overwritten through a hard link")),
        "tar-hardlink-inside": lambda t: _add(t, "facades/train/2.png", tarfile.LNKTYPE, link="facades/train/1.png"),
        "tar-dotdot-member": lambda t: _add(t, "facades/../../victim.txt", data=b"overwritten by a .. member"),
        "tar-absolute-member": lambda t: _add(t, str(outside), data=b"overwritten by an absolute member"),
        "tar-character-device": lambda t: _add(t, "facades/train/null", tarfile.CHRTYPE),
        "tar-block-device": lambda t: _add(t, "facades/train/disk", tarfile.BLKTYPE),
        "tar-fifo": lambda t: _add(t, "facades/train/pipe", tarfile.FIFOTYPE),
        "tar-dot-links": _dot_links,
        "tar-cve-2025-4517": lambda t: _cve_2025_4517_chain(
            t, len(str(root)) + len("/.facades.extracting-") + 8 + 1),
    }
    if trick in tars:
        _tar(served_folder / "facades.tar.gz", tars[trick])
        return "facades"
    zips = {
        "zip-dotdot-member": ("horse2zebra/../../victim.txt", b"overwritten", 0),
        "zip-backslash-member": ("horse2zebra\\..\\..\\victim.txt", b"overwritten", 0),
        "zip-absolute-member": (str(outside), b"overwritten", 0),
        "zip-symlink": ("horse2zebra/trainA/up", b"../../..", stat.S_IFLNK | 0o777),
        "zip-character-device": ("horse2zebra/trainA/null", b"", stat.S_IFCHR | 0o644),
        "zip-fifo": ("horse2zebra/trainA/pipe", b"", stat.S_IFIFO | 0o644),
    }
    _zip(served_folder / "horse2zebra.zip", *zips[trick])
    return "horse2zebra"


ARCHIVE_TRICKS = [
    "tar-symlink-escape", "tar-symlink-absolute", "tar-symlink-inside", "tar-hardlink-escape",
    "tar-hardlink-inside", "tar-dotdot-member", "tar-absolute-member", "tar-character-device",
    "tar-block-device", "tar-fifo", "tar-dot-links", "tar-cve-2025-4517",
    "zip-dotdot-member", "zip-backslash-member", "zip-absolute-member", "zip-symlink",
    "zip-character-device", "zip-fifo",
]


@pytest.mark.parametrize("trick", ARCHIVE_TRICKS)
def test_archive_tricks_are_refused_and_leave_nothing(trick: str, served: tuple[Path, str], tmp_path: Path) -> None:
    served_folder, url = served
    sandbox = tmp_path / "sandbox"
    root = sandbox / "datasets"
    root.mkdir(parents=True)
    (sandbox / "victim.txt").write_text("user data")
    name = _make_trick(trick, served_folder, sandbox, root)

    result = CliRunner().invoke(data_group, ["download", name, "--root", str(root), "--base-url", url])

    assert result.exit_code == 1, result.output
    line = _error_line(result.output)
    archive = "facades.tar.gz" if name == "facades" else "horse2zebra.zip"
    assert "refusing to extract" in line and archive in line
    assert (sandbox / "victim.txt").read_text() == "user data"  # nothing written outside --root
    assert sorted(p.name for p in sandbox.iterdir()) == ["datasets", "victim.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sandbox", "served"]
    assert list(root.iterdir()) == []  # no data, no archive, no checksum record, no staging folder


def test_an_archive_placed_by_hand_is_refused_but_kept(served: tuple[Path, str], tmp_path: Path) -> None:
    served_folder, url = served
    root = tmp_path / "datasets"
    root.mkdir()
    _tar(root / "facades.tar.gz", lambda t: _add(t, "facades/train/up", tarfile.SYMTYPE, link=".."))
    result = CliRunner().invoke(data_group, ["download", "facades", "--root", str(root), "--base-url", url])
    assert result.exit_code == 1 and "is a symbolic link" in _error_line(result.output)
    assert sorted(p.name for p in root.iterdir()) == ["facades.tar.gz"]  # the user's file stays


def test_unpacked_size_and_member_count_are_capped(served: tuple[Path, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    served_folder, url = served
    root = tmp_path / "datasets"
    _tar(served_folder / "facades.tar.gz", lambda t: _add(t, "facades/train/zeros.bin", data=bytes(3 << 20)))
    monkeypatch.setenv("I2I_EXTRACT_MAX_BYTES", "1M")
    result = CliRunner().invoke(data_group, ["download", "facades", "--root", str(root), "--base-url", url])
    line = _error_line(result.output)
    assert result.exit_code == 1 and "I2I_EXTRACT_MAX_BYTES" in line and "facades.tar.gz" in line
    assert not (root / "facades").exists() and not [p for p in root.iterdir() if p.name.startswith(".")]
    assert (root / "facades.tar.gz").is_file()  # a genuine large archive need not be downloaded again

    monkeypatch.setenv("I2I_EXTRACT_MAX_BYTES", "8M")
    monkeypatch.setenv("I2I_EXTRACT_MAX_FILES", "3")
    (root / "facades.tar.gz").unlink()
    (root / "facades.sha256").unlink()
    _tar(served_folder / "facades.tar.gz",
         lambda t: [_add(t, f"facades/train/{i}.png", data=_png(i)) for i in range(2, 6)])
    result = CliRunner().invoke(data_group, ["download", "facades", "--root", str(root), "--base-url", url])
    assert result.exit_code == 1 and "I2I_EXTRACT_MAX_FILES" in _error_line(result.output)
    assert not (root / "facades").exists()

    monkeypatch.setenv("I2I_EXTRACT_MAX_FILES", "lots")
    result = CliRunner().invoke(data_group, ["download", "facades", "--root", str(root), "--base-url", url])
    assert result.exit_code == 2 and "I2I_EXTRACT_MAX_FILES" in _error_line(result.output)


def test_extracted_files_get_normal_permissions(served: tuple[Path, str], tmp_path: Path) -> None:
    served_folder, url = served
    root = tmp_path / "datasets"
    _tar(served_folder / "facades.tar.gz", lambda t: (
        _add(t, "facades/val", tarfile.DIRTYPE, mode=0o7777),
        _add(t, "facades/val/1.png", data=_png(3), mode=0o6777)))
    result = CliRunner().invoke(data_group, ["download", "facades", "--root", str(root), "--base-url", url])
    assert result.exit_code == 0, result.output
    for path in [root / "facades", root / "facades" / "val", root / "facades" / "val" / "1.png"]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH | stat.S_IWGRP), (path, oct(mode))
    assert not stat.S_IMODE((root / "facades" / "val" / "1.png").stat().st_mode) & 0o111


def test_force_never_writes_through_a_link_in_the_data_set_folder(served: tuple[Path, str], tmp_path: Path) -> None:
    served_folder, url = served
    root, elsewhere = tmp_path / "datasets", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "1.png").write_bytes(b"the user's own file")
    _tar(served_folder / "facades.tar.gz", lambda t: None)
    (root / "facades").mkdir(parents=True)
    (root / "facades" / "train").symlink_to(elsewhere)  # a link the user (or an old extraction) made
    result = CliRunner().invoke(data_group, ["download", "facades", "--root", str(root), "--base-url", url, "--force"])
    assert result.exit_code == 1 and "symbolic link" in _error_line(result.output)
    assert (elsewhere / "1.png").read_bytes() == b"the user's own file"
    assert (root / "facades" / "train").is_symlink()


def test_official_downloads_use_https_and_known_checksums_are_pinned() -> None:
    from i2i.catalogue import PRETRAINED
    from i2i.data.download import DATASETS

    assert all(entry.url.startswith("https://") for entry in PRETRAINED.values())
    assert all(info.url.startswith("https://") for info in DATASETS.values())
    assert PRETRAINED["RealESRGAN_x4plus"].sha256 == "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1"
    assert {name for name, entry in PRETRAINED.items() if entry.checksum == "pinned"} == {
        "RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B", "realesr-animevideov3",
        "realesr-general-x4v3", "realesr-general-wdn-x4v3"}


# ============================================================================= crafted model files

_MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch
    from i2i.checkpoint import load_generator
    from i2i.errors import I2IError

    torch.set_num_threads(1)
    vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 30), resource.RLIM_INFINITY))  # a safety net
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for path in sys.argv[1:]:
        start = time.perf_counter()
        try:
            load_generator(path)
            outcome, message = "loaded", ""
        except I2IError as error:
            outcome, message = "refused", str(error)
        except BaseException as error:  # MemoryError, RecursionError ...
            outcome, message = type(error).__name__, str(error)[:200]
        seconds = time.perf_counter() - start
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
        print(json.dumps({"path": path, "outcome": outcome, "message": message, "s": seconds, "mb": grown}))
    """
)


def _i2i_file(path: Path, model: str, kwargs: dict, tensors: dict[str, torch.Tensor]) -> Path:
    save_file(tensors, str(path), metadata={"i2i": GeneratorInfo(model=model, kwargs=kwargs).to_json()})
    return path


def _meta_state(model: str, **kwargs: object) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return create_model(model, **kwargs).state_dict()


def _crafted_model_files(folder: Path) -> list[Path]:
    """Small files whose metadata or tensor layout would make a naive loader build gigabytes."""
    small = {"model.0.weight": torch.zeros(256, 1024)}  # 1 MB of weights
    files = [
        _i2i_file(folder / "unet_4096x12.safetensors", "unet", {"base_channels": 4096, "num_downs": 12}, small),
        _i2i_file(folder / "unet_99999.safetensors", "unet", {"num_downs": 99999}, small),
        _i2i_file(folder / "resnet_1e9.safetensors", "resnet", {"num_blocks": 10**9}, small),
        _i2i_file(folder / "srvgg_1e6.safetensors", "srvgg_compact", {"num_conv": 10**6}, small),
        _i2i_file(folder / "rrdb_wide.safetensors", "rrdbnet", {"num_feat": 4096, "num_block": 64}, small),
    ]
    # The keys of a real unet_256 at 4 channels under metadata that says 64 (218 MB to build).
    tiny = {key: torch.zeros(value.shape) for key, value in _meta_state("unet_256", base_channels=4).items()}
    files.append(_i2i_file(folder / "unet_256_claims_64.safetensors", "unet_256", {}, tiny))
    # Foreign .pth files: tensors whose strides repeat one stored value, and many tensors over one
    # storage; torch.load accepts both, and the importer would build 1.2 GB and 300 MB models.
    repeated = {key: torch.zeros(1).expand(value.shape) for key, value in
                _meta_state("srvgg_compact", num_feat=2048, num_conv=8).items()}
    torch.save(repeated, folder / "repeated_strides.pth")
    shapes = _meta_state("srvgg_compact", num_feat=256, num_conv=128)
    pool = torch.zeros(max(value.numel() for value in shapes.values()))
    torch.save({key: pool[: value.numel()].view(value.shape) for key, value in shapes.items()},
               folder / "shared_storage.pth")
    files += [folder / "repeated_strides.pth", folder / "shared_storage.pth"]
    assert all(path.stat().st_size < 3 << 20 for path in files)
    return files


def test_crafted_model_files_are_refused_fast_in_bounded_memory(tmp_path: Path) -> None:
    files = _crafted_model_files(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, *map(str, files)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["path"] for r in results] == [str(path) for path in files]
    for result in results:
        assert result["outcome"] == "refused", result
        assert result["path"] in result["message"] and "\n" not in result["message"], result
        assert result["s"] < 10, result
    assert results[-1]["mb"] < 150, results  # peak memory over all of them, after torch was imported


def test_importing_a_crafted_checkpoint_for_training_is_refused_too(tmp_path: Path) -> None:
    from i2i.foreign import build_imported, import_checkpoint
    from i2i.foreign.common import MODEL_ARGUMENT_LIMITS

    path = tmp_path / "crafted_net_D.pth"
    shapes = _meta_state("unet_discriminator", num_feat=1024, spectral_norm=False)
    torch.save({"params": {key: torch.zeros(1).expand(value.shape) for key, value in shapes.items()}}, path)
    with pytest.raises(ModelError, match=re.escape(str(path)) + r": tensor .* claims .* \(overlapping strides\)"):
        import_checkpoint(path)
    assert MODEL_ARGUMENT_LIMITS["num_feat"] == 4096
    imported = import_checkpoint(_discriminator_files(tmp_path)["realesrgan"])
    with pytest.raises(ModelError, match="num_feat=8192 is outside the range i2i builds, 0 to 4096"):
        build_imported(dataclasses.replace(imported, kwargs={**imported.kwargs, "num_feat": 8192}))


# ============================================================================= discriminators


def _junyanz_net_d(in_channels: int = 6, ndf: int = 4) -> nn.Module:
    """pytorch-CycleGAN-and-pix2pix ``NLayerDiscriminator`` (n_layers=3, batch norm) key layout."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
    width = ndf
    for stride in (2, 2, 1):
        layers += [nn.Conv2d(width, width * 2, 4, stride, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2)]
        width *= 2
    layers.append(nn.Conv2d(width, 1, 4, 1, 1))
    holder = nn.Module()
    holder.model = nn.Sequential(*layers)
    return holder


def _discriminator_files(folder: Path) -> dict[str, Path]:
    files = {"patchgan": folder / "disc.safetensors", "junyanz": folder / "latest_net_D.pth",
             "realesrgan": folder / "RealESRGAN_x4plus_netD.pth"}
    kwargs = {"base_channels": 4, "n_layers": 2}
    save_generator(files["patchgan"], create_model("patchgan", **kwargs), GeneratorInfo(model="patchgan", kwargs=kwargs))
    torch.save(_junyanz_net_d().state_dict(), files["junyanz"])
    legacy = {"parametrizations.weight.original": "weight_orig", "parametrizations.weight.0._u": "weight_u",
              "parametrizations.weight.0._v": "weight_v"}  # Real-ESRGAN's torch.nn.utils.spectral_norm names
    state = {}
    for key, value in create_model("unet_discriminator", num_feat=4).state_dict().items():
        for new, old in legacy.items():
            key = key.replace(new, old)
        state[key] = value
    torch.save({"params": state}, files["realesrgan"])
    return files


def test_the_registry_says_which_models_are_discriminators() -> None:
    from i2i.models import list_models, model_role

    roles = {name: model_role(name) for name in list_models()}
    assert {name for name, role in roles.items() if role == "discriminator"} == {
        "patchgan", "pixel_discriminator", "vgg_discriminator", "vgg_style_discriminator", "unet_discriminator"}
    assert set(roles.values()) == {"generator", "discriminator"}
    with pytest.raises(ModelError, match="Did you mean 'patchgan'"):
        model_role("patchgn")


@pytest.mark.parametrize("kind, model", [("patchgan", "patchgan"), ("junyanz", "patchgan"),
                                         ("realesrgan", "unet_discriminator")])
def test_a_discriminator_is_not_exported_or_run_as_a_generator(kind: str, model: str, tmp_path: Path) -> None:
    path = _discriminator_files(tmp_path)[kind]
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(main, ["export", "-m", str(path), "--format", "torchscript", "-o", str(out / "d.pt")])
    line = _error_line(result.output)
    assert result.exit_code == 1, result.output
    assert str(path) in line and f"is a discriminator ({model}), not a generator" in line
    assert "generator file" in line and list(out.iterdir()) == []

    cv2.imwrite(str(tmp_path / "in.png"), np.zeros((16, 16, 3), np.uint8))
    result = CliRunner().invoke(main, ["translate", "-m", str(path), str(tmp_path / "in.png"), str(out / "o.png")])
    assert result.exit_code == 1 and "is a discriminator" in _error_line(result.output)
    assert list(out.iterdir()) == []


# ============================================================================= damaged metadata


def _with_metadata(path: Path, text: str) -> Path:
    kwargs = {"base_channels": 4, "num_blocks": 1}
    state = {k: v.contiguous() for k, v in create_model("resnet", **kwargs).state_dict().items()}
    save_file(state, str(path), metadata={"i2i": text})
    return path


_GOOD = {"model": "resnet", "kwargs": {"base_channels": 4, "num_blocks": 1}}

DAMAGED = [
    ("not-json", "{'model': 'resnet'", "not valid JSON"),
    ("a-list", "[1, 2]", "a JSON array, not an object"),
    ("no-model", json.dumps({"kwargs": {}}), "has no 'model'"),
    ("no-kwargs", json.dumps({"model": "resnet"}), "has no 'kwargs'"),
    ("model-number", json.dumps({**_GOOD, "model": 5}), "'model' should be a string"),
    ("kwargs-list", json.dumps({**_GOOD, "kwargs": [4, 1]}), "'kwargs' should be an object"),
    ("range-words", json.dumps({**_GOOD, "value_range": ["low", 1]}), "'value_range' should be two numbers"),
    ("scale-text", json.dumps({**_GOOD, "scale": "4"}), "'scale' should be a whole number"),
    ("newer-format", json.dumps({**_GOOD, "format_version": 99}), "newer i2i"),
    ("unknown-model", json.dumps({**_GOOD, "model": "resnett"}), "Unknown model 'resnett'. Did you mean 'resnet'"),
    ("unknown-argument", json.dumps({**_GOOD, "kwargs": {"base_chanels": 4, "num_blocks": 1}}),
     "no argument base_chanels"),
    ("argument-type", json.dumps({**_GOOD, "kwargs": {"base_channels": "4", "num_blocks": 1}}),
     "base_channels='4' should be a whole number"),
    ("argument-choice", json.dumps({**_GOOD, "kwargs": {"base_channels": 4, "num_blocks": 1, "norm": "fancy"}}),
     "cannot build resnet"),
]


@pytest.mark.parametrize("case, text, problem", DAMAGED, ids=[case for case, _, _ in DAMAGED])
def test_damaged_metadata_names_the_file_and_the_problem(case: str, text: str, problem: str, tmp_path: Path) -> None:
    path = _with_metadata(tmp_path / f"{case}.safetensors", text)
    with pytest.raises(ModelError) as info:
        load_generator(path)
    message = str(info.value)
    assert str(path) in message and problem in message and "\n" not in message

    result = CliRunner().invoke(main, ["export", "-m", str(path), "--format", "torchscript", "-o", str(tmp_path / "x.pt")])
    assert result.exit_code == 1 and problem in _error_line(result.output)
    assert not (tmp_path / "x.pt").exists()


def test_intact_metadata_still_loads(tmp_path: Path) -> None:
    model, info = load_generator(_with_metadata(tmp_path / "good.safetensors", json.dumps(_GOOD)))
    assert info.model == "resnet" and not model.training


# ============================================================================= export outputs


@pytest.fixture
def generator(tmp_path: Path) -> Path:
    kwargs = {"base_channels": 4, "num_blocks": 1}
    path = tmp_path / "g.safetensors"
    save_generator(path, create_model("resnet", **kwargs), GeneratorInfo(model="resnet", kwargs=kwargs))
    return path


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
def test_export_never_overwrites_its_own_model(generator: Path) -> None:
    original = generator.read_bytes()
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(main, ["export", "-m", str(generator), "--format", "torchscript", "-o", str(generator), *extra])
        line = _error_line(result.output)
        assert result.exit_code == 2 and "is the model being exported" in line and str(generator) in line
        assert generator.read_bytes() == original
    result = CliRunner().invoke(main, ["export", "-m", str(generator.parent), "--format", "torchscript", "-o", str(generator)])
    assert result.exit_code == 2 and generator.read_bytes() == original  # the run folder's generator, too
    assert sorted(p.name for p in generator.parent.iterdir()) == ["g.safetensors"]


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
def test_export_replaces_an_existing_file_only_with_overwrite(generator: Path, tmp_path: Path) -> None:
    target = tmp_path / "mine.pt"
    target.write_bytes(b"the user's file")
    result = CliRunner().invoke(main, ["export", "-m", str(generator), "--format", "torchscript", "-o", str(target)])
    line = _error_line(result.output)
    assert result.exit_code == 2 and str(target) in line and "--overwrite" in line
    assert target.read_bytes() == b"the user's file"

    result = CliRunner().invoke(main, ["export", "-m", str(generator), "--format", "torchscript", "-o", str(target), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert torch.jit.load(str(target)) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors", "mine.pt"]  # no temporary files left


def test_a_full_disk_during_export_is_one_line_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    import errno

    from click.testing import CliRunner

    import i2i.files
    from i2i.checkpoint import GeneratorInfo, save_generator
    from i2i.cli import main
    from i2i.models import create_model

    model = create_model("unet", num_downs=3, base_channels=4).eval()
    save_generator(tmp_path / "g.safetensors", model, GeneratorInfo(model="unet", kwargs=model.model_spec["kwargs"]))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(i2i.files.os, "fsync", full)
    result = CliRunner().invoke(main, ["export", "-m", str(tmp_path / "g.safetensors"), "-o", str(tmp_path / "g.pt"),
                                       "--format", "torchscript"])
    assert result.exit_code == 1, result.output
    assert "cannot write the export" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors"]
