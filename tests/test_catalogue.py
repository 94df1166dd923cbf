"""The pretrained catalogue and model downloads, against a local HTTP server (never the internet)."""
from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import socket
import sys
import threading
import types
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import SHARED
from i2i import catalogue
from i2i.catalogue import PRETRAINED, cached_path, download_pretrained, find_pretrained, get_pretrained
from i2i.checkpoint import BUNDLED_MODELS, GeneratorInfo, locate_model, save_generator
from i2i.cli import main
from i2i.data.io import read_image, write_image
from i2i.errors import ModelError, UsageError
from i2i.fetch import ENV_OFFLINE, ChecksumError, DownloadError
from i2i.models import create_model

REFERENCES = SHARED / "reference-checkpoints"
needs_references = pytest.mark.skipif(not REFERENCES.is_dir(), reason="../shared/reference-checkpoints is absent")


@dataclass
class Server:
    """A local file server with HTTP Range support.

    ``requests`` lists ``(path, Range header or None)`` for every GET; ``cut`` makes the next
    response for a path stop after that many body bytes (Content-Length still says the whole);
    ``ranges=False`` makes the server ignore Range headers, as some servers do.
    """

    folder: Path
    url: str = ""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    cut: dict[str, int] = field(default_factory=dict)
    ranges: bool = True

    def put(self, relative: str, data: bytes) -> bytes:
        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data


def _handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
            header = self.headers.get("Range")
            state.requests.append((path, header))
            file = state.folder / path.lstrip("/")
            if not file.is_file():
                self.send_error(404)
                return
            data = file.read_bytes()
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", header or "")
            if match and state.ranges:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = state.cut.pop(path, None)
            self.wfile.write(body if cut is None else body[:cut])

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy would route 127.0.0.1 elsewhere; the cache goes to tmp_path; nothing reaches the internet.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", ENV_OFFLINE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(catalogue.ENV_HOME, str(tmp_path / "home"))
    monkeypatch.setenv(catalogue.ENV_MODELS_URL, "http://127.0.0.1:9/unreachable")  # overridden by `server`


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    state = Server(folder=tmp_path / "served")
    state.folder.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv(catalogue.ENV_MODELS_URL, f"{state.url}/mirror")
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _free_port() -> int:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pin(monkeypatch: pytest.MonkeyPatch, name: str, sha256: str) -> None:
    monkeypatch.setitem(PRETRAINED, name, dataclasses.replace(PRETRAINED[name], sha256=sha256))


def _i2i_generator(path: Path) -> Path:
    torch.manual_seed(0)
    kwargs = dict(base_channels=4, num_blocks=2, norm="instance")
    save_generator(path, create_model("resnet", **kwargs), GeneratorInfo(model="resnet", kwargs=kwargs, task="cyclegan"))
    return path


def _photo(path: Path, size: int = 24) -> Path:
    rng = np.random.default_rng(0)
    write_image(path, rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return path


def _cli(*args: object, code: int = 0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result


# ----------------------------------------------------------------------------- the catalogue


def test_catalogue_lists_the_published_files() -> None:
    pix2pix = {"facades_label2photo", "sat2map", "map2sat", "edges2shoes", "day2night"}
    cyclegan = {
        "apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
        "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh",
        "cyclegan/sat2map", "cyclegan/map2sat", "cityscapes_photo2label", "cityscapes_label2photo",
        "facades_photo2label", "cyclegan/facades_label2photo", "iphone2dslr_flower",
    }
    realesrgan = {
        "RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRNet_x4plus", "RealESRGAN_x4plus_anime_6B",
        "realesr-animevideov3", "realesr-general-x4v3", "realesr-general-wdn-x4v3", "ESRGAN_SRx4_DF2KOST_official",
        "RealESRGAN_x4plus_netD", "RealESRGAN_x2plus_netD", "RealESRGAN_x4plus_anime_6B_netD",
    }
    assert {n for n, e in PRETRAINED.items() if e.task == "pix2pix"} == pix2pix
    assert {n for n, e in PRETRAINED.items() if e.task == "cyclegan"} == cyclegan
    assert {n for n, e in PRETRAINED.items() if e.task == "srgan"} == realesrgan

    assert PRETRAINED["sat2map"].url == "https://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/sat2map.pth"
    assert PRETRAINED["cyclegan/sat2map"].url == "https://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/sat2map.pth"
    assert PRETRAINED["horse2zebra"].filename == "latest_net_G.pth"
    assert PRETRAINED["RealESRGAN_x4plus"].url == (
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"
    )
    assert PRETRAINED["RealESRGAN_x2plus_netD"].kind == "discriminator"
    assert PRETRAINED["RealESRGAN_x2plus"].scale == 2
    # The BasicSR-style name carries a published SHA-256 prefix; the Real-ESRGAN generators have full
    # SHA-256 sums pinned (see i2i/catalogue.py, "Checksums"); the rest are recorded at first download.
    pinned = {n: e.sha256 for n, e in PRETRAINED.items() if e.sha256}
    assert pinned.pop("ESRGAN_SRx4_DF2KOST_official") == "ff704c30"
    assert set(pinned) == {"RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B",
                           "realesr-animevideov3", "realesr-general-x4v3", "realesr-general-wdn-x4v3"}
    assert all(len(sha) == 64 for sha in pinned.values())
    assert all(e.license and e.size_mb for e in PRETRAINED.values())
    assert not set(BUNDLED_MODELS) & {n.lower() for n in PRETRAINED}  # no name hides a bundled model


def test_names_prefixes_and_close_matches() -> None:
    assert find_pretrained("realesrgan_X4PLUS") is PRETRAINED["RealESRGAN_x4plus"]
    assert find_pretrained("pix2pix/sat2map") is PRETRAINED["sat2map"]
    assert find_pretrained("cyclegan/horse2zebra") is PRETRAINED["horse2zebra"]
    assert find_pretrained("realesrgan/realesr-general-x4v3") is PRETRAINED["realesr-general-x4v3"]
    assert find_pretrained("pix2pix/horse2zebra") is None  # a CycleGAN model under the pix2pix prefix
    assert find_pretrained("/horse2zebra") is None  # an absolute path is never a name
    with pytest.raises(ModelError, match="Did you mean 'horse2zebra'.*i2i models --pretrained"):
        get_pretrained("hors2zebra")
    with pytest.raises(ModelError, match="does not exist. Did you mean 'horse2zebra'"):
        locate_model("hors2zebra")


# ----------------------------------------------------------------------------- downloading


def test_first_download_shows_progress_records_the_checksum_and_is_cached(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    data = server.put("mirror/horse2zebra/latest_net_G.pth", bytes(range(256)) * 40)

    path = download_pretrained("horse2zebra")

    assert path == cached_path(PRETRAINED["horse2zebra"]) and path.read_bytes() == data
    assert path.parent == Path(catalogue.cache_dir()) / "horse2zebra"
    err = capsys.readouterr().err
    assert "downloading " + server.url + "/mirror/horse2zebra/latest_net_G.pth" in err
    assert "100%" in err and "/s" in err  # the progress bar, with its rate
    assert "no checksum is published" in err and "recorded in" in err
    assert path.with_name("latest_net_G.pth.sha256").read_text().split() == [_sha256(data), "latest_net_G.pth"]
    assert not list(path.parent.glob("*.part"))

    assert locate_model("horse2zebra") == path  # cached: verified, not downloaded again
    assert len(server.requests) == 1

    path.write_bytes(b"changed on disk")
    with pytest.raises(ChecksumError, match="differs from the first download"):
        locate_model("horse2zebra")


def test_a_pinned_checksum_is_verified(server: Server, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = server.put("mirror/RealESRGAN_x4plus/RealESRGAN_x4plus.pth", b"weights" * 1000)
    _pin(monkeypatch, "RealESRGAN_x4plus", _sha256(data).upper())
    path = download_pretrained("RealESRGAN_x4plus")
    assert path.read_bytes() == data
    assert "matches the published SHA-256" in capsys.readouterr().err


def test_a_pinned_checksum_mismatch_keeps_nothing(server: Server) -> None:
    entry = PRETRAINED["ESRGAN_SRx4_DF2KOST_official"]  # its file name publishes the prefix ff704c30
    server.put(f"mirror/{entry.name}/{entry.filename}", b"not the published file")
    with pytest.raises(ChecksumError, match="expected a SHA-256 starting with ff704c30") as info:
        download_pretrained(entry.name, progress=False)
    assert "nothing was kept" in str(info.value)
    folder = cached_path(entry).parent
    assert not cached_path(entry).exists()
    assert not [p for p in folder.iterdir() if not p.name.endswith(".lock")]  # no file, no .part, no record


def test_a_truncated_download_is_detected_and_resumed_with_range(server: Server) -> None:
    data = server.put("mirror/style_monet/latest_net_G.pth", np.random.default_rng(1).bytes(50_000))
    server.cut["/mirror/style_monet/latest_net_G.pth"] = 12_345
    path = cached_path(PRETRAINED["style_monet"])

    with pytest.raises(DownloadError, match="closed early: received 12345 of 50000 bytes.*run again to resume"):
        download_pretrained("style_monet", progress=False)
    assert not path.exists()
    assert path.with_name(path.name + ".part").stat().st_size == 12_345

    assert download_pretrained("style_monet", progress=False) == path
    assert server.requests[1] == ("/mirror/style_monet/latest_net_G.pth", "bytes=12345-")  # only the rest
    assert path.read_bytes() == data
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == _sha256(data)
    assert not path.with_name(path.name + ".part").exists()


def test_a_server_that_ignores_range_is_downloaded_again(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    data = server.put("mirror/zebra2horse/latest_net_G.pth", np.random.default_rng(2).bytes(30_000))
    server.cut["/mirror/zebra2horse/latest_net_G.pth"] = 1_000
    server.ranges = False
    with pytest.raises(DownloadError, match="closed early"):
        download_pretrained("zebra2horse")
    path = download_pretrained("zebra2horse")
    assert server.requests[1][1] == "bytes=1000-"
    assert path.read_bytes() == data  # the whole file, not the first 1000 bytes twice
    assert "does not resume downloads" in capsys.readouterr().err


def test_no_network_names_the_url_and_the_path_for_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = _free_port()
    monkeypatch.setenv(catalogue.ENV_MODELS_URL, f"http://127.0.0.1:{port}")
    path = cached_path(PRETRAINED["RealESRGAN_x4plus"])
    with pytest.raises(DownloadError, match="cannot reach") as info:
        download_pretrained("RealESRGAN_x4plus", progress=False)
    assert f"http://127.0.0.1:{port}/RealESRGAN_x4plus/RealESRGAN_x4plus.pth" in str(info.value)
    assert str(path) in str(info.value) and PRETRAINED["RealESRGAN_x4plus"].url in str(info.value)  # by hand

    result = _cli("upscale", "--model", "RealESRGAN_x4plus", _photo(tmp_path / "in.png"), tmp_path / "out.png",
                  code=1)
    assert "cannot reach" in result.output and str(path) in result.output and "Traceback" not in result.output

    monkeypatch.setenv(ENV_OFFLINE, "1")
    with pytest.raises(DownloadError, match=f"downloads are off.*{re.escape(str(path))}"):
        download_pretrained("RealESRGAN_x4plus", progress=False)


def test_a_file_put_in_the_cache_by_hand_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_OFFLINE, "1")
    path = cached_path(PRETRAINED["day2night"])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"placed by hand")
    assert locate_model("day2night") == path
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == _sha256(b"placed by hand")


def test_concurrent_uses_download_once(server: Server) -> None:
    data = server.put("mirror/monet2photo/latest_net_G.pth", np.random.default_rng(3).bytes(200_000))
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(download_pretrained("monet2photo", progress=False)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and all(p.read_bytes() == data for p in results)
    assert len(server.requests) == 1


# ----------------------------------------------------------------------------- --model NAME / URL / hf://


def test_model_name_end_to_end_with_an_i2i_generator(server: Server, tmp_path: Path) -> None:
    generator = _i2i_generator(tmp_path / "gen.safetensors")
    server.put("mirror/apple2orange/latest_net_G.pth", generator.read_bytes())
    photo = _photo(tmp_path / "apple.png")

    _cli("translate", "--model", "apple2orange", photo, tmp_path / "orange.png")
    _cli("translate", "--model", generator, photo, tmp_path / "direct.png")
    assert np.array_equal(read_image(tmp_path / "orange.png"), read_image(tmp_path / "direct.png"))
    assert len(server.requests) == 1


def test_an_existing_path_wins_over_a_catalogue_name(server: Server, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _i2i_generator(tmp_path / "horse2zebra")
    assert locate_model("horse2zebra") == Path("horse2zebra")
    assert server.requests == []


def test_model_url_is_cached_by_a_url_derived_name(server: Server, tmp_path: Path) -> None:
    generator = _i2i_generator(tmp_path / "gen.safetensors")
    server.put("files/gen.safetensors", generator.read_bytes())
    url = f"{server.url}/files/gen.safetensors"
    photo = _photo(tmp_path / "in.png")

    result = _cli("translate", "--model", url, photo, tmp_path / "a.png")
    assert "recorded in" in result.output
    _cli("translate", "--model", url, photo, tmp_path / "b.png")
    assert len(server.requests) == 1
    cached = locate_model(url)
    assert cached.name == "gen.safetensors" and cached.parent.parent == catalogue.cache_dir() / "urls"
    assert np.array_equal(read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png"))

    missing = f"{server.url}/files/none.pth"
    result = _cli("translate", "--model", missing, photo, tmp_path / "c.png", code=1)
    assert "HTTP 404" in result.output and missing in result.output and "Traceback" not in result.output


def test_hf_without_huggingface_hub_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    result = _cli("translate", "--model", "hf://org/repo/gen.safetensors", _photo(tmp_path / "in.png"),
                  tmp_path / "out.png", code=1)
    assert "pip install huggingface_hub" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_hf_specs_go_to_huggingface_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []

    def hf_hub_download(*, repo_id: str, filename: str, revision: str | None) -> str:
        calls.append((repo_id, filename, revision))
        return str(tmp_path / filename.replace("/", "_"))

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download))
    assert locate_model("hf://org/repo/weights/gen.pth") == tmp_path / "weights_gen.pth"
    locate_model("hf://org/repo@v1.0/gen.pth")
    assert calls == [("org/repo", "weights/gen.pth", None), ("org/repo", "gen.pth", "v1.0")]
    with pytest.raises(UsageError, match="hf://ORG/REPO/FILE"):
        locate_model("hf://org/repo")


@needs_references
def test_model_name_end_to_end_with_an_official_junyanz_file(server: Server, tmp_path: Path) -> None:
    name = "junyanz_resnet9_instance_ngf8"
    local = shutil.copy(REFERENCES / f"{name}.pth", tmp_path / "latest_net_G.pth")
    server.put("mirror/horse2zebra/latest_net_G.pth", Path(local).read_bytes())
    out = tmp_path / "zebra.png"

    _cli("translate", "--model", "horse2zebra", REFERENCES / f"{name}.input.png", out)

    reference = torch.load(REFERENCES / f"{name}.io.pt", weights_only=True)["output"][0]
    expected = ((reference.permute(1, 2, 0).numpy() + 1) / 2 * 255).round()
    assert np.abs(read_image(out).astype(np.float64) - expected).max() <= 1.0


@needs_references
def test_init_from_a_catalogue_name(server: Server, demo_data: Path, tmp_path: Path) -> None:
    import yaml

    from conftest import tiny_pix2pix

    server.put("mirror/facades_label2photo/latest_net_G.pth",
               (REFERENCES / "junyanz_unet128_instance_ngf8.pth").read_bytes())
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path / "runs", max_steps=1)
    raw["data"].update(load_size=136, crop_size=128, batch_size=1)
    config = tmp_path / "ft.yaml"
    config.write_text(yaml.safe_dump(raw))
    _cli("train", config, "--init-from", "facades_label2photo")
    assert (tmp_path / "runs" / "run" / "generator.safetensors").is_file()
    assert [path for path, _ in server.requests] == ["/mirror/facades_label2photo/latest_net_G.pth"]


# ----------------------------------------------------------------------------- i2i models --pretrained


def test_models_pretrained_lists_the_catalogue(server: Server) -> None:
    assert "unet_256" in _cli("models").output.split()  # the architectures, as before

    server.put("mirror/style_vangogh/latest_net_G.pth", b"x" * 100)
    download_pretrained("style_vangogh", progress=False)
    lines = _cli("models", "--pretrained").output.splitlines()

    assert lines[0].split() == ["NAME", "TASK", "SCALE", "SIZE", "LICENCE", "SHA-256", "CACHED", "SOURCE"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line and not line.startswith(" ")}
    assert rows["style_vangogh"][-3:] == ["recorded", "yes", PRETRAINED["style_vangogh"].url]
    assert rows["horse2zebra"][1:] == ["cyclegan", "x1", "~46", "MB", "BSD-2-Clause", "none", "no",
                                       PRETRAINED["horse2zebra"].url]
    assert rows["RealESRGAN_x2plus"][2] == "x2" and rows["RealESRGAN_x2plus"][5] == "BSD-3-Clause"
    assert rows["ESRGAN_SRx4_DF2KOST_official"][6] == "prefix"
    assert "RealESRGAN_x4plus_netD" in rows
    text = "\n".join(lines)
    assert str(catalogue.cache_dir()) in text and "recorded beside the file" in text
