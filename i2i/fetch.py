"""One file from a URL into a local path: progress, resume, checksums, atomic placement.

The only code in i2i that opens a URL; the data set downloader (:mod:`i2i.data.download`) and the
pretrained model catalogue (:mod:`i2i.catalogue`) both use it. Nothing here imports torch.

Progress
    A tqdm bar on stderr with the size, rate and ETA; status lines go to stderr and the logger.

Resume
    Bytes stream into ``FILE.part``. A download that stops early (the connection drops, or the
    server sends fewer bytes than its ``Content-Length``) keeps the ``.part`` file, and the next
    attempt asks for the rest with an HTTP ``Range`` request. A server that ignores ``Range``
    (answers ``200`` with the whole file) or cannot satisfy it (``416``) is downloaded again from
    the start. The final name appears only after the file is complete and verified
    (``os.replace``), so a file under its final name is always whole; the pinned or recorded
    SHA-256 is what proves that a resumed file was not stitched from two versions.

Checksums
    A pinned SHA-256 (all 64 digits, or a published prefix such as the 8 digits BasicSR puts in
    its file names) is verified. Otherwise the SHA-256 of the first download is recorded in
    ``FILE.sha256`` (``sha256sum`` format) and every later use must match it. A mismatch raises
    :class:`ChecksumError`; a fresh download that fails its check is deleted.

Concurrency
    :func:`download_file` holds an exclusive lock (``.FILE.lock`` beside the file, on POSIX) while
    it checks and downloads, so processes started together (torchrun ranks) download once.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2i.errors import DataError

__all__ = [
    "torch_hub_checkpoints",
    "ENV_OFFLINE",
    "ChecksumError",
    "DownloadError",
    "Downloaded",
    "check_sha256",
    "download_file",
    "fetch",
    "normalize_sha256",
    "read_recorded_sha256",
    "say",
    "sha256_file",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

#: Set to 1 to forbid downloads: only files already in place are used.
ENV_OFFLINE = "I2I_OFFLINE"
USER_AGENT = "i2i-downloader"

_CHUNK_SIZE = 1 << 20
_TIMEOUT_S = 60.0
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_SHA256_PREFIX_PATTERN = re.compile(r"^[0-9a-f]{8,64}$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_NETWORK_ERRORS = (urllib.error.URLError, OSError, ValueError, http.client.HTTPException)


class DownloadError(DataError):
    """A file could not be downloaded or verified; the message says how to fix it."""


class ChecksumError(DownloadError):
    """A file's SHA-256 differs from the expected or the recorded one."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def normalize_sha256(value: str, what: str, *, allow_prefix: bool = False) -> str:
    """``value`` in lower case, checked to be 64 hex digits (or, with ``allow_prefix``, 8 to 64)."""
    normalized = value.strip().lower()
    pattern = _SHA256_PREFIX_PATTERN if allow_prefix else _SHA256_PATTERN
    if not pattern.match(normalized):
        digits = "8 to 64" if allow_prefix else "64"
        raise ValueError(f"{what} must be {digits} hexadecimal digits, got '{value}'")
    return normalized


def say(message: str, progress: bool) -> None:
    """Status lines go to stderr in interactive use (progress=True) and always to the logger."""
    logger.info(message)
    if progress:
        print(message, file=sys.stderr, flush=True)


def read_recorded_sha256(checksum_path: Path) -> str | None:
    """The SHA-256 recorded in ``checksum_path`` (first word), or None when there is no record."""
    if not checksum_path.is_file():
        return None
    text = checksum_path.read_text(encoding="utf-8").split()
    if not text:
        return None
    try:
        return normalize_sha256(text[0], f"the checksum recorded in '{checksum_path}'")
    except ValueError as error:
        raise ChecksumError(f"{error}; fix or delete that file") from None


def check_sha256(
    actual: str, expected: str | None, recorded: str | None, path: Path, checksum_path: Path, *, hint: str,
) -> None:
    """Raise :class:`ChecksumError` unless ``actual`` matches ``expected`` (a full SHA-256 or a
    prefix) and the ``recorded`` one; ``hint`` ends the message for a mismatch with ``expected``."""
    if expected is not None and not actual.startswith(expected):
        wanted = expected if len(expected) == 64 else f"a SHA-256 starting with {expected}"
        raise ChecksumError(f"SHA-256 mismatch for '{path.name}': expected {wanted}, got {actual}. {hint}")
    if recorded is not None and actual != recorded:
        raise ChecksumError(
            f"'{path.name}' differs from the first download: SHA-256 {actual}, but '{checksum_path}' "
            f"records {recorded}. The file on the server (or the file on disk) changed. If you trust "
            f"the new file, delete '{checksum_path}' and run again; to download it again, delete '{path}'."
        )


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- one HTTP transfer


def _request(url: str, offset: int, advice: str) -> Any:
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            error.close()
            return None  # the partial file is not a prefix of the file the server has
        raise DownloadError(f"the server answered HTTP {error.code} ({error.reason}) for {url}. {advice}") from error
    except _NETWORK_ERRORS as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"cannot reach {url} ({reason}). {advice}") from error


def _open(url: str, offset: int, advice: str, progress: bool) -> tuple[Any, int, int | None]:
    """``(response, offset the response starts at, total size or None)``; offset 0 means start over."""
    response = _request(url, offset, advice)
    if response is None:
        say(f"the partial download does not match the file on the server; starting again: {url}", progress)
        return _open(url, 0, advice, progress)
    status = getattr(response, "status", None) or 200
    length = response.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    if offset and status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
        if match and int(match.group(1)) == offset:
            total = int(match.group(3)) if match.group(3) != "*" else (offset + size if size is not None else None)
            return response, offset, total
        response.close()
        say(f"the server resumed at the wrong place; starting again: {url}", progress)
        return _open(url, 0, advice, progress)
    if offset:
        say(f"the server does not resume downloads (no Range support); starting again: {url}", progress)
    return response, 0, size


def _digest_of(path: Path, length: int) -> Any:
    """A SHA-256 object fed with the first ``length`` bytes of ``path`` (the part already there)."""
    digest = hashlib.sha256()
    if length:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(min(_CHUNK_SIZE, length - handle.tell())), b""):
                digest.update(chunk)
    return digest


def fetch(url: str, part: Path, *, progress: bool, advice: str, desc: str | None = None) -> str:
    """Download ``url`` into ``part``, resuming what ``part`` already holds; returns the SHA-256.

    A download that stops early keeps ``part`` (the next call resumes it) and raises
    :class:`DownloadError` saying so.
    """
    from tqdm.auto import tqdm

    existing = part.stat().st_size if part.is_file() else 0
    response, offset, total = _open(url, existing, advice, progress)
    if offset:
        say(f"resuming at {offset} bytes: {url}", progress)
    digest = _digest_of(part, offset)
    received = offset
    with response, open(part, "r+b" if offset else "wb") as handle, tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
        desc=desc or part.name.removesuffix(".part"), disable=not progress, dynamic_ncols=True,
    ) as bar:
        handle.truncate(offset)
        handle.seek(offset)
        try:
            for chunk in iter(lambda: response.read(_CHUNK_SIZE), b""):
                handle.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:
            handle.flush()
            raise DownloadError(
                f"downloading {url} stopped after {received} bytes ({error}); the partial file '{part}' is "
                f"kept: run again to resume. {advice}"
            ) from error
        handle.flush()
        os.fsync(handle.fileno())
    if total is not None and received != total:
        raise DownloadError(
            f"the connection to {url} closed early: received {received} of {total} bytes; the partial file "
            f"'{part}' is kept: run again to resume. {advice}"
        )
    return digest.hexdigest()


# ----------------------------------------------------------------------------- a cached file


@dataclass(frozen=True)
class Downloaded:
    """What :func:`download_file` did: the file, its SHA-256, and whether it was fetched now and
    whether its checksum was recorded now (no record existed)."""

    path: Path
    sha256: str
    downloaded: bool
    recorded: bool


@contextlib.contextmanager
def _exclusive(target: Path, progress: bool) -> Iterator[None]:
    """Hold an exclusive lock for ``target`` (POSIX ``flock``); elsewhere, or in a read-only
    folder, go on without one."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    try:
        handle = open(target.with_name(f".{target.name}.lock"), "a")
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            say(f"waiting for another process to finish downloading '{target}'", progress)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _record(checksum_path: Path, actual: str, target: Path, progress: bool) -> bool:
    try:
        write_text_atomic(checksum_path, f"{actual}  {target.name}\n")
    except OSError as error:  # a read-only cache still works; it is only not verified later
        say(f"could not record the SHA-256 of '{target}' in '{checksum_path}' ({error})", progress)
        return False
    return True


def download_file(
    url: str, target: str | os.PathLike, *, sha256: str | None = None, progress: bool = True, advice: str = "",
    desc: str | None = None,
) -> Downloaded:
    """``target``, downloaded from ``url`` unless it is already there, and verified.

    Args:
        url: where to get the file (http, https, or file).
        target: the final path; ``TARGET.part`` holds a download in progress and
            ``TARGET.sha256`` the recorded checksum.
        sha256: the published SHA-256 (or a published prefix of it, 8+ hex digits); None when
            none is published: the first download's is recorded and later uses must match it.
        progress: show a progress bar and status lines on stderr.
        advice: appended to error messages (where to put the file by hand, a mirror...).
        desc: label of the progress bar (default: the file name).

    Raises:
        DownloadError: offline, a server error, or an incomplete download (resumable).
        ChecksumError: the file does not match the pinned or the recorded SHA-256.
    """
    target = Path(target)
    expected = normalize_sha256(sha256, "sha256", allow_prefix=True) if sha256 else None
    checksum_path = target.with_name(target.name + ".sha256")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target, progress):
        recorded = read_recorded_sha256(checksum_path)
        downloaded = not target.is_file()
        if downloaded:
            actual = _download_new(url, target, expected, recorded, checksum_path, progress, advice, desc)
        else:
            actual = sha256_file(target)
            check_sha256(actual, expected, recorded, target, checksum_path,
                         hint=f"The file in place is not the published one; delete '{target}' to download it again.")
        new_record = recorded is None and _record(checksum_path, actual, target, progress)
    return Downloaded(target, actual, downloaded, new_record)


def _download_new(
    url: str, target: Path, expected: str | None, recorded: str | None, checksum_path: Path, progress: bool,
    advice: str, desc: str | None,
) -> str:
    if os.environ.get(ENV_OFFLINE, "").strip() not in ("", "0"):
        raise DownloadError(f"'{target}' is not there and downloads are off ({ENV_OFFLINE} is set). {advice}")
    part = target.with_name(target.name + ".part")
    say(f"downloading {url}", progress)
    actual = fetch(url, part, progress=progress, advice=advice, desc=desc)
    try:
        check_sha256(actual, expected, recorded, target, checksum_path,
                     hint="The download is corrupt or the file on the server changed; nothing was kept. Run again "
                     "to retry.")
    except ChecksumError:
        part.unlink(missing_ok=True)  # a bad download must not look like a good file, nor be resumed
        raise
    os.replace(part, target)
    return actual


def torch_hub_checkpoints() -> Path:
    """Where torch.hub and torchvision keep downloaded weights, and where i2i looks for weights it
    never downloads itself (VGG19, Inception, LPIPS): ``torch.hub.get_dir()/checkpoints``, i.e.
    ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch/hub/checkpoints`` by default)."""
    import torch  # here, not at the top: the downloads above run without torch

    return Path(torch.hub.get_dir()) / "checkpoints"
