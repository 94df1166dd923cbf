"""i2i.data.download against a local HTTP server: layout, checksums, caching, errors, safety."""
from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from i2i.cli_data import data_group
from i2i.data.download import (
    DATASETS,
    ENV_BASE_URL,
    ChecksumError,
    DownloadError,
    UnknownDatasetError,
    UnsafeArchiveError,
    download_dataset,
    extract_archive,
    get_dataset_info,
)
from i2i.data.io import read_image


def _png(value: int, size: tuple[int, int] = (4, 8)) -> bytes:
    ok, buffer = cv2.imencode(".png", np.full(size + (3,), value, np.uint8))
    assert ok
    return buffer.tobytes()


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as bundle:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            bundle.addfile(info, io.BytesIO(payload))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, payload in members.items():
            bundle.writestr(name, payload)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Server:
    """A local file server; ``requests`` lists every path asked for."""

    folder: Path
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def _no_proxy_no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy setting in the environment would route 127.0.0.1 elsewhere; the mirror
    # variable would override base_url defaults.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", ENV_BASE_URL):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    folder = tmp_path / "served"
    folder.mkdir()
    state = Server(folder=folder, url="")

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            state.requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    # A short poll interval makes shutdown() return at once instead of after up to 0.5 s.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/datasets"
    (folder / "datasets").mkdir()
    state.folder = folder / "datasets"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _serve_facades_tar(server: Server) -> Path:
    return _tar_gz(
        server.folder / "facades.tar.gz",
        {"facades/train/1.png": _png(10), "facades/train/2.png": _png(20), "facades/val/1.png": _png(30)},
    )


# ----------------------------------------------------------------------------- catalogue


def test_catalogue_urls_and_names() -> None:
    assert DATASETS["facades"].url == "https://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
    assert DATASETS["horse2zebra"].url == "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip"
    assert DATASETS["cyclegan/maps"].url == "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/maps.zip"
    pix2pix = {"facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day"}
    assert {n for n, i in DATASETS.items() if i.kind == "pix2pix"} == pix2pix
    assert len([i for i in DATASETS.values() if i.kind == "cyclegan"]) == 11
    assert all(info.sha256 is None for info in DATASETS.values())  # none published; none invented
    assert get_dataset_info("pix2pix/facades") is DATASETS["facades"]
    assert get_dataset_info("cyclegan/facades").kind == "cyclegan"
    assert get_dataset_info("cyclegan/horse2zebra") is DATASETS["horse2zebra"]
    with pytest.raises(UnknownDatasetError, match="Did you mean 'horse2zebra'.*Valid names: facades"):
        get_dataset_info("hors2zebra")
    with pytest.raises(UnknownDatasetError):
        get_dataset_info("cyclegan/edges2shoes")  # a pix2pix set under the wrong prefix


# ----------------------------------------------------------------------------- happy paths


def test_download_tar_extracts_records_checksum_and_caches(server: Server, tmp_path: Path) -> None:
    archive = _serve_facades_tar(server)
    root = tmp_path / "datasets"

    folder = download_dataset("facades", root, base_url=server.url, progress=False)

    assert folder == root / "facades"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == [
        "train/1.png", "train/2.png", "val/1.png"
    ]
    assert int(read_image(folder / "train/2.png")[0, 0, 0]) == 20
    record = (root / "facades.sha256").read_text().split()
    assert record == [_sha256(archive), "facades.tar.gz"]
    assert (root / "facades.tar.gz").read_bytes() == archive.read_bytes()
    assert server.requests == ["/datasets/facades.tar.gz"]
    assert not list(root.glob("*.part")) and not list(root.glob(".*"))  # no staging or partial files

    assert download_dataset("facades", root, base_url=server.url, progress=False) == folder
    assert len(server.requests) == 1  # already extracted: no second download


def test_download_zip_for_name_shared_with_pix2pix(server: Server, tmp_path: Path) -> None:
    _zip(
        server.folder / "facades.zip",
        {"facades/trainA/a.png": _png(1), "facades/trainB/b.png": _png(2), "facades/testA/c.png": _png(3)},
    )
    root = tmp_path / "datasets"
    folder = download_dataset("cyclegan/facades", root, base_url=server.url, progress=False)
    assert folder == root / "cyclegan" / "facades"
    assert (folder / "trainA" / "a.png").is_file() and (folder / "testA" / "c.png").is_file()
    assert (root / "cyclegan" / "facades.sha256").is_file()
    assert not (root / "facades").exists()  # the pix2pix facades folder stays free
    assert server.requests == ["/datasets/facades.zip"]


def test_environment_variable_sets_the_mirror(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _serve_facades_tar(server)
    monkeypatch.setenv(ENV_BASE_URL, server.url)
    assert (download_dataset("facades", tmp_path / "d", progress=False) / "val" / "1.png").is_file()
    assert server.requests == ["/datasets/facades.tar.gz"]


def test_archive_placed_by_hand_is_used_without_downloading(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    root.mkdir()
    _tar_gz(root / "night2day.tar.gz", {"night2day/train/1.png": _png(5)})
    folder = download_dataset("night2day", root, base_url=server.url, progress=False)
    assert (folder / "train" / "1.png").is_file()
    assert server.requests == []


def test_user_checksum_is_verified(server: Server, tmp_path: Path) -> None:
    archive = _serve_facades_tar(server)
    root = tmp_path / "datasets"
    download_dataset("facades", root, base_url=server.url, sha256=_sha256(archive).upper(), progress=False)
    assert (root / "facades" / "train" / "1.png").is_file()


# ----------------------------------------------------------------------------- checksum failures


def test_wrong_user_checksum_raises_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    _serve_facades_tar(server)
    root = tmp_path / "datasets"
    with pytest.raises(ChecksumError, match="SHA-256 mismatch for 'facades.tar.gz': expected 0000"):
        download_dataset("facades", root, base_url=server.url, sha256="0" * 64, progress=False)
    assert sorted(p.name for p in root.iterdir()) == []  # no archive, no .part, no record, no folder
    with pytest.raises(ValueError, match="64 hexadecimal"):
        download_dataset("facades", root, base_url=server.url, sha256="abc", progress=False)


def test_changed_archive_on_server_is_an_error(server: Server, tmp_path: Path) -> None:
    _serve_facades_tar(server)
    root = tmp_path / "datasets"
    folder = download_dataset("facades", root, base_url=server.url, progress=False)
    (folder / "my_notes.txt").write_text("user data")
    first_archive = (root / "facades.tar.gz").read_bytes()

    _tar_gz(server.folder / "facades.tar.gz", {"facades/train/1.png": _png(99)})  # the server changes
    with pytest.raises(ChecksumError, match=r"differs from the first download.*facades\.sha256"):
        download_dataset("facades", root, base_url=server.url, force=True, progress=False)

    assert (root / "facades.tar.gz").read_bytes() == first_archive  # the verified archive is kept
    assert int(read_image(folder / "train" / "1.png")[0, 0, 0]) == 10  # data untouched
    assert (folder / "my_notes.txt").read_text() == "user data"
    assert not list(root.glob("*.part"))


def test_force_downloads_again_and_keeps_user_files(server: Server, tmp_path: Path) -> None:
    _serve_facades_tar(server)
    root = tmp_path / "datasets"
    folder = download_dataset("facades", root, base_url=server.url, progress=False)
    (folder / "train" / "1.png").write_bytes(b"damaged")
    (folder / "mine.png").write_bytes(_png(7))
    download_dataset("facades", root, base_url=server.url, force=True, progress=False, keep_archive=False)
    assert len(server.requests) == 2
    assert int(read_image(folder / "train" / "1.png")[0, 0, 0]) == 10  # restored from the archive
    assert (folder / "mine.png").is_file()  # not in the archive: left alone
    assert not (root / "facades.tar.gz").exists() and (root / "facades.sha256").is_file()


# ----------------------------------------------------------------------------- network failures


def test_missing_file_on_server_is_a_download_error(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_dataset("maps", root, base_url=server.url, progress=False)
    message = str(info.value)
    assert f"{server.url}/maps.tar.gz" in message
    assert "--base-url" in message and str(root / "maps.tar.gz") in message
    assert not (root / "maps").exists() and not list(root.glob("*.part"))


def test_unreachable_server_is_a_download_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot reach") as info:
        download_dataset("horse2zebra", tmp_path, base_url=f"http://127.0.0.1:{port}", progress=False)
    assert f"http://127.0.0.1:{port}/horse2zebra.zip" in str(info.value)


# ----------------------------------------------------------------------------- unsafe archives


def test_tar_with_parent_reference_is_rejected(tmp_path: Path) -> None:
    archive = _tar_gz(tmp_path / "bad.tar.gz", {"facades/ok.png": _png(1), "../evil.png": _png(2)})
    target = tmp_path / "out" / "x"
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./evil\.png' contains '\.\.'"):
        extract_archive(archive, target)
    assert not (tmp_path / "out" / "evil.png").exists() and list(target.iterdir()) == []


def test_tar_with_absolute_path_or_escaping_link_is_rejected(tmp_path: Path) -> None:
    archive = _tar_gz(tmp_path / "abs.tar", {"/tmp/evil.png": b"x"})
    with pytest.raises(UnsafeArchiveError, match="absolute"):
        extract_archive(archive, tmp_path / "out")
    link_archive = tmp_path / "link.tar"
    with tarfile.open(link_archive, "w") as bundle:
        info = tarfile.TarInfo("data/link")
        info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
        bundle.addfile(info)
    with pytest.raises(UnsafeArchiveError, match=r"'data/link' is a symbolic link \(to '\.\./\.\./outside'\)"):
        extract_archive(link_archive, tmp_path / "out2")


def test_zip_with_parent_reference_is_rejected(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bad.zip", {"h2z/trainA/a.png": _png(1), "h2z/../../evil.png": _png(2)})
    with pytest.raises(UnsafeArchiveError, match="contains '..'"):
        extract_archive(archive, tmp_path / "out" / "x")
    assert not (tmp_path / "evil.png").exists() and list((tmp_path / "out" / "x").iterdir()) == []


def test_malicious_download_leaves_no_data_folder(server: Server, tmp_path: Path) -> None:
    _zip(server.folder / "horse2zebra.zip", {"horse2zebra/trainA/a.png": _png(1), "../evil.png": _png(2)})
    root = tmp_path / "datasets"
    with pytest.raises(UnsafeArchiveError):
        download_dataset("horse2zebra", root, base_url=server.url, progress=False)
    assert not (root / "horse2zebra").exists()
    assert not (tmp_path / "evil.png").exists() and not list(root.glob(".*"))


# ----------------------------------------------------------------------------- CLI


def test_cli_download_list_and_errors(server: Server, tmp_path: Path) -> None:
    _serve_facades_tar(server)
    runner = CliRunner()
    root = tmp_path / "datasets"

    result = runner.invoke(data_group, ["download", "facades", "--root", str(root), "--base-url", server.url])
    assert result.exit_code == 0, result.output
    assert str(root / "facades") in result.stdout
    assert "sha256" in result.output  # the recorded checksum is reported

    result = runner.invoke(data_group, ["download", "facade", "--root", str(root)])
    # A misspelt name is a usage error (exit 2); a download that fails is failed work (exit 1).
    assert result.exit_code == 2
    assert "Did you mean 'facades'" in result.output and "Traceback" not in result.output

    result = runner.invoke(data_group, ["download", "maps", "--root", str(root), "--base-url", server.url])
    assert result.exit_code == 1 and "HTTP 404" in result.output and "Traceback" not in result.output

    result = runner.invoke(data_group, ["list"])
    assert result.exit_code == 0
    assert "edges2shoes" in result.output and "cyclegan/facades" in result.output

    help_text = runner.invoke(data_group, ["download", "--help"]).output
    assert "i2i data download facades" in help_text


def test_extraction_shows_a_progress_bar_of_files(tmp_path: Path, capsys) -> None:
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for index in range(5):
            bundle.writestr(f"set/train/{index}.txt", f"item {index}")
    extract_archive(archive, tmp_path / "quiet")
    assert capsys.readouterr().err == ""
    extract_archive(archive, tmp_path / "out", progress=True)
    err = capsys.readouterr().err
    assert "extract: 100%" in err and "5/5" in err and "file/s" in err
    assert sorted(p.name for p in (tmp_path / "out" / "set" / "train").iterdir()) == [f"{i}.txt" for i in range(5)]
