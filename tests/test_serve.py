"""`i2i serve`: the web UI's HTTP API, its safety checks, the command, and the page in a real browser."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette", reason="the web UI needs the [serve] extra: pip install 'i2i-toolkit[serve]'")
pytest.importorskip("multipart", reason="the web UI needs the [serve] extra: pip install 'i2i-toolkit[serve]'")
pytest.importorskip("uvicorn", reason="the web UI needs the [serve] extra: pip install 'i2i-toolkit[serve]'")

from click.testing import CliRunner  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from i2i.checkpoint import GeneratorInfo, save_generator  # noqa: E402
from i2i.cli import main  # noqa: E402
from i2i.data.io import read_image, write_image  # noqa: E402
from i2i.errors import UsageError  # noqa: E402
from i2i.models import create_model  # noqa: E402
from i2i.serve.app import create_app  # noqa: E402
from i2i.serve.server import ServerThread, bind  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
TINY_SR = dict(scale=4, in_channels=3, out_channels=3, base_channels=4, num_blocks=1)
JOB_TIMEOUT = 60


def _tiny_x4(path: Path) -> Path:
    """A random x4 super-resolution generator file, small enough to run in milliseconds."""
    import torch

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = GeneratorInfo(model="srresnet", kwargs=TINY_SR, value_range=(0.0, 1.0), scale=4, task="srgan")
    save_generator(path, create_model("srresnet", **TINY_SR), info)
    return path


def _photo(path: Path, height: int = 48, width: int = 64) -> Path:
    """A crop of a real photo (scikit-image's chelsea), written as PNG."""
    from skimage import data

    write_image(path, np.ascontiguousarray(data.chelsea()[100 : 100 + height, 150 : 150 + width]))
    return path


def _png_bytes(height: int = 12, width: int = 16) -> bytes:
    return cv2.imencode(".png", np.full((height, width, 3), 128, np.uint8))[1].tobytes()


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    _tiny_x4(folder / "sr" / "tiny_x4.safetensors")
    return folder


@pytest.fixture()
def client(root: Path, tmp_path: Path):
    app = create_app([root.resolve()], device="cpu", work_dir=tmp_path / "work")
    (tmp_path / "work").mkdir()
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def _submit(client: TestClient, model: str, files: list[tuple[str, bytes]] | None = None, **fields: str):
    upload = [("files", (name, payload, "application/octet-stream")) for name, payload in files or []]
    return client.post("/api/jobs", data={"model": model, **fields}, files=upload or None)


def _finished(client: TestClient, job_id: str) -> dict:
    job = client.app.state.jobs.get(job_id)
    assert job.wait(JOB_TIMEOUT), "the job did not finish"
    return client.get(f"/api/jobs/{job_id}").json()


def test_models_lists_bundled_names_root_files_and_the_catalogue(client: TestClient, root: Path) -> None:
    (root / "run" / "checkpoints").mkdir(parents=True)
    (root / "run" / "checkpoints" / "latest.pt").write_bytes(b"training state, not a generator")
    listing = client.get("/api/models").json()
    by_group: dict[str, list[str]] = {}
    for model in listing["models"]:
        by_group.setdefault(model["group"], []).append(model["spec"])
    assert by_group["bundled"] == ["x4"]
    assert by_group["files"] == [str((root / "sr" / "tiny_x4.safetensors").resolve())]
    assert "RealESRGAN_x4plus" in by_group["pretrained"] and "horse2zebra" in by_group["pretrained"]
    assert "RealESRGAN_x4plus_netD" not in by_group["pretrained"]  # discriminators are no --model
    assert listing["roots"] == [str(root.resolve())]


def test_an_image_job_runs_the_chosen_model_and_serves_the_result(client: TestClient, root: Path, tmp_path: Path) -> None:
    model = str(root / "sr" / "tiny_x4.safetensors")
    photo = _photo(tmp_path / "cat.png").read_bytes()
    response = _submit(client, model, [("cat.png", photo), ("cat 2.png", photo)], outscale="2", tile="0", precision="fp32")
    assert response.status_code == 201, response.text
    job = _finished(client, response.json()["id"])
    assert job["state"] == "done" and job["done"] == job["total"] == 2
    item = job["items"][1]
    assert (item["width"], item["height"], item["result_width"], item["result_height"]) == (64, 48, 128, 96)
    assert item["download_name"] == "cat 2_x2.png"
    result = client.get(item["result_url"])
    assert result.status_code == 200 and "cat%202_x2.png" in result.headers["content-disposition"]
    assert cv2.imdecode(np.frombuffer(result.content, np.uint8), cv2.IMREAD_UNCHANGED).shape == (96, 128, 3)
    assert client.get(item["input_url"]).content == photo  # "before" is the upload itself
    work_files = {p.name for p in (tmp_path / "work").rglob("*") if p.is_file()}
    assert {"input_000.png", "input_001.png", "result_000.png", "result_001.png"} <= work_files


def test_a_file_under_a_root_is_read_in_place_and_left_untouched(client: TestClient, root: Path) -> None:
    photo = _photo(root / "photos" / "cat.png", 16, 20)
    before = photo.read_bytes()
    response = _submit(client, str(root / "sr" / "tiny_x4.safetensors"), path=str(photo))
    assert response.status_code == 201, response.text
    job = _finished(client, response.json()["id"])
    assert job["state"] == "done" and (job["items"][0]["result_width"], job["items"][0]["result_height"]) == (80, 64)
    assert sorted(p.name for p in photo.parent.iterdir()) == ["cat.png"] and photo.read_bytes() == before


def test_jobs_wait_in_a_queue_and_run_one_at_a_time(root: Path, tmp_path: Path) -> None:
    import threading

    from i2i.serve.jobs import load_translator

    release, running = threading.Event(), []

    def slow_load(settings):  # the first job holds the worker until the test lets it go
        running.append(settings.outscale)
        assert release.wait(JOB_TIMEOUT)
        return load_translator(settings)

    app = create_app([root], device="cpu", work_dir=tmp_path, load=slow_load)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        model = str(root / "sr" / "tiny_x4.safetensors")
        first = _submit(client, model, [("a.png", _png_bytes())], outscale="1").json()
        second = _submit(client, model, [("b.png", _png_bytes())], outscale="2").json()
        assert second["state"] == "queued" and second["position"] == 1
        release.set()
        done = [_finished(client, job["id"]) for job in (first, second)]
    assert [job["state"] for job in done] == ["done", "done"] and running == [1.0, 2.0]
    assert (done[1]["items"][0]["result_width"], done[1]["items"][0]["result_height"]) == (32, 24)


def test_a_job_that_cannot_get_its_model_fails_with_the_reason(client: TestClient, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("I2I_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("I2I_OFFLINE", "1")
    response = _submit(client, "RealESRGAN_x4plus", [("a.png", _png_bytes())])
    assert response.status_code == 201  # a catalogue name is a model the page may ask for
    job = _finished(client, response.json()["id"])
    assert job["state"] == "failed" and "downloads are off" in job["message"]


def test_a_model_path_outside_the_roots_is_refused(client: TestClient, root: Path, tmp_path: Path) -> None:
    outside = _tiny_x4(tmp_path / "elsewhere" / "x4.safetensors")
    (root / "link").symlink_to(outside.parent, target_is_directory=True)
    for spec in (str(outside), str(root / ".." / "elsewhere" / "x4.safetensors"), str(root / "link" / "x4.safetensors")):
        response = _submit(client, spec, [("a.png", _png_bytes())])
        assert response.status_code == 403, spec
        assert "outside the folders this server may read" in response.json()["error"]
    # the same rule for an input read by path instead of uploaded
    response = _submit(client, "x4", path=str(_photo(tmp_path / "private.png")))
    assert response.status_code == 403 and "private.png" in response.json()["error"]
    assert [p.name for p in (tmp_path / "work").iterdir()] == []  # nothing was kept of refused jobs


def test_an_unknown_model_or_a_url_is_a_clear_error(client: TestClient) -> None:
    response = _submit(client, "x5", [("a.png", _png_bytes())])
    assert response.status_code == 400
    assert response.json()["error"].startswith("no model is called 'x5'") and "x4" in response.json()["error"]
    response = _submit(client, "https://example.com/model.pth", [("a.png", _png_bytes())])
    assert response.status_code == 400 and "is a URL" in response.json()["error"]


def test_a_file_that_is_not_an_image_is_a_clear_error(client: TestClient) -> None:
    response = _submit(client, "x4", [("notes.txt", b"not a picture")])
    assert response.status_code == 400
    assert response.json()["error"].startswith("'notes.txt' is not an image or a video")
    response = _submit(client, "x4", [("fake.png", b"not a picture either")])
    assert response.status_code == 400
    assert response.json()["error"].startswith("'fake.png' cannot be read as an image")
    response = _submit(client, "x4", [("a.png", _png_bytes())], outscale="100")
    assert response.status_code == 400 and "out of range" in response.json()["error"]


def test_uploads_over_the_limit_and_forged_requests_are_refused(root: Path, tmp_path: Path) -> None:
    app = create_app([root], device="cpu", max_upload_mb=1, work_dir=tmp_path)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = _submit(client, "x4", [("big.png", b"\0" * (2 * 2**20))])
        assert response.status_code == 413 and "limit of 1 MB" in response.json()["error"]
        forged = client.post("/api/jobs", data={"model": "x4"}, headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403
    with TestClient(app, base_url="http://rebound.example") as client:  # DNS rebinding: a foreign host name
        assert client.get("/api/models").status_code == 400


def test_a_video_job_reports_frames_and_writes_a_4x_video(client: TestClient, root: Path, tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for value in range(0, 250, 50):
        writer.write(np.full((24, 32, 3), value, np.uint8))
    writer.release()
    response = _submit(client, str(root / "sr" / "tiny_x4.safetensors"), [("clip.avi", clip.read_bytes())])
    assert response.status_code == 201, response.text
    job = _finished(client, response.json()["id"])
    assert job["state"] == "done", job["message"]
    assert job["kind"] == "video" and job["done"] == job["total"] == 5  # done: counted as frames went through
    assert job["rate"] > 0
    item = job["items"][0]
    assert (item["result_width"], item["result_height"]) == (128, 96) and item["download_name"] == "clip_x4.mp4"
    video = tmp_path / "result.mp4"
    video.write_bytes(client.get(item["result_url"]).content)
    capture = cv2.VideoCapture(str(video))
    assert (capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == (5, 128)
    capture.release()


def test_a_video_job_counts_written_frames_without_changing_the_kept_translator(root: Path, tmp_path: Path) -> None:
    from i2i.inference.translator import Translator
    from i2i.serve.jobs import load_translator

    class Untouchable(Translator):  # the queue keeps the translator for the next job: nothing may patch it
        def __setattr__(self, name: str, value) -> None:
            if name == "translate_images":
                raise AttributeError("a job replaced the kept translator's translate_images")
            super().__setattr__(name, value)

    def load(settings):
        translator = load_translator(settings)
        translator.__class__ = Untouchable
        return translator

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for value in range(0, 210, 30):
        writer.write(np.full((24, 32, 3), value, np.uint8))
    writer.release()
    app = create_app([root], device="cpu", work_dir=tmp_path, load=load)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = _submit(client, str(root / "sr" / "tiny_x4.safetensors"), [("clip.avi", clip.read_bytes())])
        job = _finished(client, response.json()["id"])
    assert job["state"] == "done", job["message"]
    assert job["done"] == job["total"] == 7 and job["rate"] > 0


def test_serve_command_help_missing_extra_and_busy_port(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    help_text = runner.invoke(main, ["serve", "--help"]).output
    assert "Examples:" in help_text and "i2i serve --open --root" in help_text
    with bind("127.0.0.1", 0) as taken:
        with pytest.raises(UsageError, match="choose another --port"):
            bind("127.0.0.1", taken.getsockname()[1])
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the [serve] extra were not installed
    result = runner.invoke(main, ["serve"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: i2i serve needs uvicorn: pip install 'i2i-toolkit[serve]'"]


# ----------------------------------------------------------------------------- the page in a browser

BROWSER_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def _browser_or_skip():
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        pytest.skip("no /usr/bin/chromium: run scripts/setup_tests.sh (Debian's chromium package) for the browser test")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; its own browser download is not needed)")
    return sync_playwright


def test_the_page_upscales_a_photo_in_a_real_browser(root: Path, tmp_path: Path) -> None:
    sync_playwright = _browser_or_skip()
    photo = _photo(tmp_path / "chelsea.png")
    model = str((root / "sr" / "tiny_x4.safetensors").resolve())
    app = create_app([root.resolve()], device="cpu", work_dir=tmp_path)
    with ServerThread(app, bind("127.0.0.1", 0)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS,
            accept_downloads=True,
        )
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#model option[value='x4']", state="attached")
            offered = page.eval_on_selector_all("#model option", "options => options.map(o => o.value)")
            assert "x4" in offered and model in offered and "RealESRGAN_x4plus" in offered
            page.set_input_files("#file-input", str(photo))
            page.select_option("#model", model)
            page.click("#run")
            page.wait_for_function("document.getElementById('result-image').naturalWidth > 0", timeout=JOB_TIMEOUT * 1000)
            shown = page.eval_on_selector("#result-image", "img => [img.naturalWidth, img.naturalHeight, img.complete]")
            assert shown == [4 * 64, 4 * 48, True]
            assert "64×48 → 256×192" in page.inner_text("#result-name")
            with page.expect_download() as download:
                page.click("#download")
            saved = tmp_path / "downloaded.png"
            download.value.save_as(saved)
            assert download.value.suggested_filename == "chelsea_x4.png"
            assert read_image(saved).shape == (4 * 48, 4 * 64, 3)
        finally:
            browser.close()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
