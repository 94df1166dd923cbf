"""The web UI's HTTP side: a small Starlette app with one static page and a JSON API.

Routes:
    ``GET /``: the page (``static/index.html``; its script and style under ``/static``).
    ``GET /api/models``: the models the page may use (:func:`i2i.serve.models.list_models`).
    ``POST /api/jobs``: multipart form -- ``files`` (images, or one video) or ``path`` (a file
    under a ``--root``), ``model``, ``outscale``, ``tile``, ``precision``; answers the queued job.
    ``GET /api/jobs/{id}``: the job's state and progress (the page polls it).
    ``GET /api/jobs/{id}/items/{n}/input|result``: the before view and the result file.

Safety: uploads are copied into the server's own temporary work folder under names the server
makes up (the file names people send are only shown); a request body over the upload limit is cut
off while it streams; paths are accepted only inside the ``--root`` folders; a form posted from
another site is refused (``Origin``), and on a loopback address only ``localhost`` host names are
served (DNS rebinding). Every :class:`~i2i.errors.I2IError` becomes ``{"error": message}`` with a
4xx status.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from i2i.errors import DataError, I2IError, UsageError
from i2i.serve.jobs import Job, JobItem, JobQueue, JobSettings
from i2i.serve.models import OutsideRootsError, inside_roots, list_models, resolve_model

__all__ = ["create_app", "UploadTooLargeError", "DEFAULT_MAX_UPLOAD_MB", "MAX_FILES", "MAX_OUTSCALE"]

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_UPLOAD_MB = 1024
MAX_FILES = 100
MAX_OUTSCALE = 16.0
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # i2i.device.PRECISIONS, without importing torch here
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


class UploadTooLargeError(UsageError):
    """A request body larger than the server's upload limit."""


class UnknownJobError(UsageError):
    """A job id the server does not know (finished long ago, or from an earlier server)."""


_STATUS = {UploadTooLargeError: 413, OutsideRootsError: 403, UnknownJobError: 404}


async def _user_error(request: Request, error: Exception) -> Response:
    status = next((code for kind, code in _STATUS.items() if isinstance(error, kind)), 400)
    return JSONResponse({"error": str(error)}, status_code=status)


# ----------------------------------------------------------------------------- reading the form


def _limited(request: Request, limit: int) -> Request:
    """The same request, with a body that raises :class:`UploadTooLargeError` past ``limit`` bytes
    (checked as it streams, so a client that hides its size cannot fill the disk)."""
    declared = request.headers.get("content-length", "")
    too_large = UploadTooLargeError(
        f"the upload is larger than this server's limit of {limit // 2**20} MB; send fewer or smaller "
        "files, or restart with a larger --max-upload-mb"
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    received = 0

    async def receive() -> Any:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise too_large
        return message

    return Request(request.scope, receive)


def _clean_name(name: str | None) -> str:
    """A display name from a client's file name: no folders, no control characters, not too long."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip() or "upload"
    stem, dot, ext = base.rpartition(".")
    return (stem[:80] + dot + ext[:10]) if dot else base[:90]


def _optional_number(form: Any, key: str, kind: type, what: str) -> Any:
    text = str(form.get(key) or "").strip()
    if text in ("", "auto", "model"):
        return None
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{key} {text!r} is not {what}") from None


def _settings(form: Any, roots: Sequence[Path], device: str) -> JobSettings:
    model = resolve_model(str(form.get("model") or ""), roots)
    outscale = _optional_number(form, "outscale", float, "a factor such as 2 or 3.5")
    if outscale is not None and not 0 < outscale <= MAX_OUTSCALE:
        raise UsageError(f"scale {outscale:g} is out of range; choose a factor above 0 and at most {MAX_OUTSCALE:g}")
    tile = _optional_number(form, "tile", int, "a tile size in pixels (or empty for automatic, 0 for none)")
    if tile is not None and tile < 0:
        raise UsageError(f"tile {tile} is negative; give a size in pixels, 0 (never tile) or leave it automatic")
    precision = str(form.get("precision") or "auto")
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    return JobSettings(model, outscale=outscale, tile=tile, precision=precision, device=device)


def _kind_of(name: str) -> str:
    from i2i.data.io import IMAGE_EXTENSIONS

    suffix = Path(name).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "images"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    raise DataError(
        f"{name!r} is not an image or a video this server reads; send {', '.join(IMAGE_EXTENSIONS)} images "
        f"or a {', '.join(VIDEO_EXTENSIONS)} video"
    )


def _check_input(item: JobItem, kind: str) -> None:
    """Refuse a file that is not what its name says before it is queued (header checks only)."""
    from i2i.data.io import ImageReadError, max_pixel_limit, read_image_size

    if kind == "video":
        from i2i.inference.video_io import open_video

        try:
            open_video(item.source)
        except I2IError as error:
            raise DataError(f"{item.name!r} cannot be read as a video: {str(error).replace(str(item.source), item.name)}") from None
        return
    try:
        height, width = read_image_size(item.source)
    except ImageReadError as error:
        raise DataError(f"{item.name!r} cannot be read as an image: {error.reason}") from None
    limit = max_pixel_limit()
    if limit and width * height > limit:
        raise DataError(f"{item.name!r} has {width}x{height} pixels, more than the limit of {limit}; "
                        "make it smaller first or raise I2I_MAX_PIXELS where the server runs")


def _job_kind(items: Sequence[JobItem]) -> str:
    kinds = {_kind_of(item.name) for item in items}
    if "video" in kinds and len(items) > 1:
        raise UsageError("send one video at a time, or only images; a job holds images or one video")
    return kinds.pop()


async def _save_uploads(files: Sequence[UploadFile], folder: Path) -> list[JobItem]:
    items = []
    for index, upload in enumerate(files):
        name = _clean_name(upload.filename)
        _kind_of(name)
        target = folder / f"input_{index:03d}{Path(name).suffix.lower()}"
        with open(target, "wb") as out:
            await run_in_threadpool(shutil.copyfileobj, upload.file, out, 2**20)
        items.append(JobItem(name=name, source=target))
    return items


def _item_from_root(path_text: str, roots: Sequence[Path], folder: Path) -> JobItem:
    """A file the server reads where it lies (inside a root); only the job's results are written."""
    path = inside_roots(path_text, roots)
    if not path.is_file():
        raise DataError(f"{path_text!r} is not a file; give the path of an image or a video under a --root")
    return JobItem(name=path.name, source=path)


# ----------------------------------------------------------------------------- routes


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def models(request: Request) -> Response:
    state = request.app.state
    choices = await run_in_threadpool(list_models, state.roots)
    return JSONResponse({
        "models": [choice.as_json() for choice in choices], "roots": [str(r) for r in state.roots],
        "max_upload_mb": state.max_upload // 2**20, "max_files": MAX_FILES, "precisions": list(PRECISIONS),
    })


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise OutsideRootsError(f"a form sent from {origin} is refused; use the page this server shows")


async def create_job(request: Request) -> Response:
    state = request.app.state
    _check_origin(request)
    request = _limited(request, state.max_upload)
    async with request.form(max_files=MAX_FILES, max_fields=20) as form:
        settings = _settings(form, state.roots, state.device)
        uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
        path_text = str(form.get("path") or "").strip()
        if not uploads and not path_text:
            raise UsageError("no file was sent; drop images or a video on the page (or give a path under a --root)")
        folder = Path(tempfile.mkdtemp(prefix="job-", dir=state.work_dir))
        try:
            items = await _save_uploads(uploads, folder) if uploads else [_item_from_root(path_text, state.roots, folder)]
            kind = _job_kind(items)
            for item in items:
                await run_in_threadpool(_check_input, item, kind)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    job = state.jobs.submit(Job(kind=kind, settings=settings, folder=folder, items=items))
    return JSONResponse(job.as_json(state.jobs.position(job)), status_code=201)


def _job(request: Request) -> Job:
    job = request.app.state.jobs.get(request.path_params["job_id"])
    if job is None:
        raise UnknownJobError("no such job on this server (it was cleared, or the server restarted); send the files again")
    return job


async def job_status(request: Request) -> Response:
    job = _job(request)
    return JSONResponse(job.as_json(request.app.state.jobs.position(job)), headers={"Cache-Control": "no-store"})


async def job_file(request: Request) -> Response:
    job = _job(request)
    index, which = request.path_params["index"], request.path_params["which"]
    if not 0 <= index < len(job.items) or which not in ("input", "result"):
        raise UnknownJobError(f"job {job.id} has no {which} number {index}")
    item = job.items[index]
    path = item.view if which == "input" else item.result
    if path is None or not path.is_file():
        raise UnknownJobError(f"the {which} of {item.name!r} is not ready yet")
    name = item.name if which == "input" else item.download_name
    return FileResponse(path, filename=name, content_disposition_type="inline", headers={"Cache-Control": "no-store"})


# ----------------------------------------------------------------------------- the app


def create_app(
    roots: Sequence[Path] = (),
    *,
    device: str = "auto",
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB,
    work_dir: Path | None = None,
    load: Callable[[JobSettings], Any] | None = None,
    loopback_only: bool = True,
) -> Starlette:
    """The web UI as an ASGI app.

    Args:
        roots: folders (already checked, see :func:`i2i.serve.models.check_roots`) whose model
            files are offered and inside which a ``path`` may be read.
        device: where jobs run (``auto``, ``cpu``, ``cuda:1`` ...).
        max_upload_mb: the largest request body.
        work_dir: where uploads and results go (default: a new temporary folder, removed when the
            app stops; a given folder is left in place).
        load: ``JobSettings -> translator`` (default :func:`i2i.load`); tests inject tiny models.
        loopback_only: answer only requests addressed to ``localhost``/``127.0.0.1`` (guards
            against DNS rebinding when the server listens on a loopback address).
    """
    own_work_dir = work_dir is None
    folder = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="i2i-serve-"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        app.state.jobs.close()
        if own_work_dir:
            shutil.rmtree(folder, ignore_errors=True)

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)] if loopback_only else []
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/models", models),
            Route("/api/jobs", create_job, methods=["POST"]),
            Route("/api/jobs/{job_id:str}", job_status),
            Route("/api/jobs/{job_id:str}/items/{index:int}/{which:str}", job_file),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=middleware,
        exception_handlers={I2IError: _user_error},
        lifespan=lifespan,
    )
    app.state.roots, app.state.device = list(roots), device
    app.state.max_upload = int(max_upload_mb) * 2**20
    app.state.work_dir = folder
    app.state.jobs = JobQueue(load)
    return app
