"""The public pix2pix and CycleGAN data sets: download, verify, extract safely.

Catalogue names
    The pix2pix sets (aligned ``A|B`` images in ``train/``, ``val/``, ``test/``) use their plain
    names: ``facades``, ``cityscapes``, ``maps``, ``edges2shoes``, ``edges2handbags``,
    ``night2day``. The CycleGAN sets (``trainA/``, ``trainB/``, ``testA/``, ``testB/``) use their
    plain names too (``horse2zebra``, ``monet2photo``, ...), except the three names that both
    projects publish: the CycleGAN versions of those are ``cyclegan/facades``, ``cyclegan/maps``
    and ``cyclegan/cityscapes``. ``pix2pix/NAME`` and ``cyclegan/NAME`` are accepted for every
    set, so the prefix can always be written out.

Where things go (``root`` defaults to ``datasets``)
    ``facades``          -> archive ``root/facades.tar.gz``, data ``root/facades/``
    ``horse2zebra``      -> archive ``root/horse2zebra.zip``, data ``root/horse2zebra/``
    ``cyclegan/facades`` -> archive ``root/cyclegan/facades.zip``, data ``root/cyclegan/facades/``
    A file downloaded by hand to the archive path is used instead of downloading.

Checksums
    The authors publish no checksums, so catalogue entries have ``sha256=None``. The SHA-256 of
    the first download is reported and recorded in ``NAME.sha256`` beside the archive; later runs
    that obtain the archive again (``force=True``, or an archive placed by hand) must match that
    record, and a changed archive is an error. A checksum passed by the user is always verified.

Safety
    Downloads stream to ``ARCHIVE.part``, resume after an interruption (HTTP ``Range``) and are
    renamed only when complete and verified (:mod:`i2i.fetch`, shared with the model catalogue).
    Before anything is written every member is checked: only plain files and folders with
    relative names pass; links of any kind, devices, FIFOs, absolute paths and ``..`` are refused,
    and so is an archive that unpacks to more than :data:`UNPACK_RATIO` (50) times its size (at
    least :data:`UNPACK_MIN_BYTES`, 1 GiB; at most :data:`UNPACK_MAX_BYTES`, 64 GiB) or to more
    than :data:`UNPACK_MAX_FILES` (1,000,000) members (edges2handbags, the largest set, unpacks to
    about 9 GB in 140,000 files); ``$I2I_EXTRACT_MAX_BYTES`` (``200G``) and
    ``$I2I_EXTRACT_MAX_FILES`` replace those limits. A refused archive is deleted with its new
    checksum record, unless the user placed it there or it is only over a limit. Files get 0644
    and folders 0755 (less the umask), whatever the archive says. Extraction goes to a fresh
    hidden folder moved into place, never through a link in an existing data set folder. Nothing
    the user made is deleted; ``force=True`` replaces only the files the archive contains.
"""
from __future__ import annotations

import contextlib
import difflib
import gzip
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Union, cast

from i2i.errors import UsageError
from i2i.fetch import (
    ChecksumError, DownloadError, check_sha256, fetch, normalize_sha256, read_recorded_sha256, say, sha256_file,
    write_text_atomic,
)

__all__ = [
    "CYCLEGAN_BASE_URL", "DATASETS", "ENV_BASE_URL", "ENV_MAX_BYTES", "ENV_MAX_FILES", "PIX2PIX_BASE_URL",
    "UNPACK_MAX_BYTES", "UNPACK_MAX_FILES", "UNPACK_MIN_BYTES", "UNPACK_RATIO", "ArchiveLimitError", "ChecksumError",
    "DatasetInfo", "DownloadError", "UnknownDatasetError", "UnsafeArchiveError", "download_dataset",
    "extract_archive", "extraction_limits", "get_dataset_info", "list_datasets", "sha256_file",
]

PIX2PIX_BASE_URL = "https://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
CYCLEGAN_BASE_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
ENV_BASE_URL = "I2I_DATASETS_URL"
ENV_MAX_BYTES = "I2I_EXTRACT_MAX_BYTES"
ENV_MAX_FILES = "I2I_EXTRACT_MAX_FILES"
UNPACK_RATIO = 50
UNPACK_MIN_BYTES = 1 << 30
UNPACK_MAX_BYTES = 64 << 30
UNPACK_MAX_FILES = 1_000_000

_COPY_CHUNK = 1 << 20
_CORRUPT_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError,
                           NotImplementedError, RuntimeError)  # the last two: zip compression or encryption
_MISMATCH_HINT = "The download is corrupt or the file on the server changed; check the --sha256 value and retry."


class UnsafeArchiveError(DownloadError):
    """The archive holds something a data set never does: a link, a device, a path leading out."""


class ArchiveLimitError(UnsafeArchiveError):
    """The archive unpacks to more bytes or members than the limits allow (see :func:`extraction_limits`)."""


class UnknownDatasetError(UsageError):
    """The name is not in the catalogue; the message lists the valid names."""


@dataclass(frozen=True)
class DatasetInfo:
    """One catalogue entry.

    Attributes:
        name: catalogue key and the data folder under ``root`` (``facades``, ``cyclegan/facades``).
        kind: ``"pix2pix"`` (aligned A|B images, train/val/test) or ``"cyclegan"``
            (trainA/trainB/testA/testB).
        filename: archive name on the server (``facades.tar.gz``, ``horse2zebra.zip``).
        base_url: folder URL on the official server.
        sha256: expected SHA-256 of the archive, or None (the authors publish none).
        description: one line for listings.
        note: a caveat shown in listings and in download errors.
    """

    name: str
    kind: str
    filename: str
    base_url: str
    sha256: str | None = None
    description: str = ""
    note: str = ""

    @property
    def url(self) -> str:
        """Download URL on the official server."""
        return f"{self.base_url}/{self.filename}"


def _pix2pix(name: str, description: str) -> DatasetInfo:
    return DatasetInfo(name, "pix2pix", f"{name}.tar.gz", PIX2PIX_BASE_URL, None, description)


def _cyclegan(name: str, description: str, key: str | None = None, note: str = "") -> DatasetInfo:
    return DatasetInfo(key or name, "cyclegan", f"{name}.zip", CYCLEGAN_BASE_URL, None, description, note)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        _pix2pix("facades", "building facades <-> label maps (400 images)"),
        _pix2pix("cityscapes", "street scenes <-> semantic labels (2975 train images)"),
        _pix2pix("maps", "aerial photos <-> Google maps (1096 train images)"),
        _pix2pix("edges2shoes", "edge sketches -> shoe photos (50k images)"),
        _pix2pix("edges2handbags", "edge sketches -> handbag photos (137k images)"),
        _pix2pix("night2day", "night -> day webcam scenes (20k images)"),
        _cyclegan("apple2orange", "apples <-> oranges (ImageNet)"),
        _cyclegan("summer2winter_yosemite", "Yosemite in summer <-> winter (Flickr)"),
        _cyclegan("horse2zebra", "horses <-> zebras (ImageNet)"),
        _cyclegan("monet2photo", "Monet paintings <-> photos"),
        _cyclegan("cezanne2photo", "Cezanne paintings <-> photos"),
        _cyclegan("ukiyoe2photo", "Ukiyo-e prints <-> photos"),
        _cyclegan("vangogh2photo", "Van Gogh paintings <-> photos"),
        _cyclegan("iphone2dslr_flower", "iPhone <-> DSLR flower photos (shallow depth of field)"),
        _cyclegan("maps", "aerial photos <-> maps, unpaired layout", key="cyclegan/maps"),
        _cyclegan(
            "cityscapes",
            "street scenes <-> labels, unpaired layout",
            key="cyclegan/cityscapes",
            note="the CycleGAN authors do not host this one for license reasons; get it from "
            "https://www.cityscapes-dataset.com or use the pix2pix 'cityscapes' set",
        ),
        _cyclegan("facades", "facades <-> labels, unpaired layout", key="cyclegan/facades"),
    )
}


def list_datasets() -> list[DatasetInfo]:
    """All catalogue entries: pix2pix sets first, then CycleGAN sets, in catalogue order."""
    return sorted(DATASETS.values(), key=lambda info: info.kind != "pix2pix")


def get_dataset_info(name: str) -> DatasetInfo:
    """Look a data set up by catalogue name (``pix2pix/`` or ``cyclegan/`` prefixes accepted).

    Raises:
        UnknownDatasetError: listing close matches and every valid name.
    """
    key = name.strip().strip("/")
    if key in DATASETS:
        return DATASETS[key]
    kind, _, plain = key.partition("/")
    if plain and kind in ("pix2pix", "cyclegan"):
        for candidate in (key, plain):
            info = DATASETS.get(candidate)
            if info is not None and info.kind == kind:
                return info
    close = difflib.get_close_matches(key, DATASETS, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownDatasetError(f"unknown data set '{name}'.{hint} Valid names: {', '.join(DATASETS)}")


# ----------------------------------------------------------------------------- extracting

#: A member that passed the checks: its clean relative name, whether it is a folder, its size, its entry.
_Member = tuple[str, bool, int, Union[tarfile.TarInfo, zipfile.ZipInfo]]
_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))
_TAR_MODES = {tarfile.SYMTYPE: stat.S_IFLNK, tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
              tarfile.FIFOTYPE: stat.S_IFIFO}


def _refuse(archive: Path, name: str, problem: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing to extract '{archive}': member '{name}' {problem}; a data set archive holds only plain files "
        "and folders, so this is not the published archive. Download it from the official server or a mirror "
        "you trust (--base-url)."
    )


def _member(archive: Path, name: str, is_dir: bool, is_file: bool, mode: int, size: int, entry: Any) -> _Member:
    """Check one member (``mode``: its ``st_mode`` type bits, 0 when unknown): a plain file or
    folder with a relative name and no ``..``, or :class:`UnsafeArchiveError`."""
    if not (is_file or is_dir):
        what = next((f"is {kind}" for test, kind in _KINDS if test(mode)), "is not a plain file or folder")
        link = getattr(entry, "linkname", "")
        raise _refuse(archive, name, what + (f" (to '{link}')" if link else ""))
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        raise _refuse(archive, name, "has an absolute path")
    parts = [part for part in normalized.split("/") if part not in ("", ".")]
    if ".." in parts or "\0" in normalized:
        raise _refuse(archive, name, "contains '..'" if ".." in parts else "has a NUL character in its name")
    return "/".join(parts), is_dir, 0 if is_dir else size, entry


def _members(bundle: tarfile.TarFile | zipfile.ZipFile, archive: Path) -> list[_Member]:
    if isinstance(bundle, zipfile.ZipFile):  # external_attr holds st_mode when a Unix tool wrote the archive
        members = [_member(archive, info.filename, info.is_dir(), stat.S_IFMT(info.external_attr >> 16) in
                           (0, stat.S_IFREG) and not info.is_dir(), info.external_attr >> 16, info.file_size, info)
                   for info in bundle.infolist()]
    else:
        for info in bundle.getmembers():
            if info.islnk():
                raise _refuse(archive, info.name, f"is a hard link (to '{info.linkname}')")
        members = [_member(archive, info.name, info.isdir(), info.isfile(), _TAR_MODES.get(info.type, 0),
                           info.size, info) for info in bundle.getmembers()]
    return [member for member in members if member[0]]


def _size_setting(value: str, variable: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([KMGT]?)i?B?", value, re.IGNORECASE)
    if not match:
        raise UsageError(f"{variable}={value!r} is not a size; write a number of bytes or one with K, M, G or T "
                         f"(for example {variable}=200G)")
    return int(match.group(1)) << (10 * " KMGT".index(match.group(2).upper() or " "))


def extraction_limits(archive_size: int, max_bytes: int | None = None, max_members: int | None = None) -> tuple[int, int]:
    """``(bytes, members)`` an archive of ``archive_size`` bytes may unpack to: the arguments when
    given, else ``$I2I_EXTRACT_MAX_BYTES`` / ``$I2I_EXTRACT_MAX_FILES``, else the defaults
    (:data:`UNPACK_RATIO` x the archive size, at least :data:`UNPACK_MIN_BYTES` and at most
    :data:`UNPACK_MAX_BYTES`; :data:`UNPACK_MAX_FILES` members)."""
    size_setting, count_setting = (os.environ.get(name, "").strip() for name in (ENV_MAX_BYTES, ENV_MAX_FILES))
    if max_bytes is None:
        default = min(UNPACK_MAX_BYTES, max(UNPACK_MIN_BYTES, UNPACK_RATIO * archive_size))
        max_bytes = _size_setting(size_setting, ENV_MAX_BYTES) if size_setting else default
    if max_members is None and count_setting and not count_setting.isdigit():
        raise UsageError(f"{ENV_MAX_FILES}={count_setting!r} is not a whole number; write, for example, "
                         f"{ENV_MAX_FILES}=2000000")
    if max_members is None:
        max_members = int(count_setting) if count_setting else UNPACK_MAX_FILES
    return max_bytes, max_members


def _too_big(archive: Path, what: str, limit: int, variable: str) -> ArchiveLimitError:
    return ArchiveLimitError(
        f"refusing to extract '{archive}': it unpacks to {what}, more than the limit of {limit}. If you trust the "
        f"archive, raise the limit with the environment variable {variable} and run again."
    )


def _unpack(bundle: tarfile.TarFile | zipfile.ZipFile, members: list[_Member], staging: Path, archive: Path,
            max_bytes: int, progress: bool) -> None:
    """Write the checked ``members`` into ``staging``: folders (0755) and new plain files (0644),
    less the umask, counting every byte written so that no declared size has to be trusted."""
    left = max_bytes
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    from tqdm import tqdm

    bar = tqdm(members, desc="extract", unit="file", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    for name, is_dir, _size, entry in bar:
        path = staging.joinpath(*name.split("/"))
        (path if is_dir else path.parent).mkdir(mode=0o755, parents=True, exist_ok=True)
        if is_dir:
            continue
        if isinstance(bundle, zipfile.ZipFile):
            source: IO[bytes] | None = bundle.open(cast(zipfile.ZipInfo, entry))
        else:
            source = bundle.extractfile(cast(tarfile.TarInfo, entry))
        with source as opened, open(os.open(path, flags, 0o644), "wb") as handle:  # type: ignore[union-attr]
            for chunk in iter(lambda: opened.read(_COPY_CHUNK), b""):
                left -= len(chunk)
                if left < 0:
                    raise _too_big(archive, "more bytes than its members declare", max_bytes, ENV_MAX_BYTES)
                handle.write(chunk)


def _extract_into(archive: Path, target: Path, limits: tuple[int | None, int | None], *, strip_top: bool,
                  progress: bool = False) -> None:
    """Check every member, unpack into a fresh hidden folder beside ``target``, then move the
    content (the single top-level folder when ``strip_top``) into ``target``."""
    is_zip = archive.name.lower().endswith(".zip")
    try:
        with (zipfile.ZipFile(archive) if is_zip else tarfile.open(archive, "r:*")) as bundle:
            members = _members(bundle, archive)
            max_bytes, max_members = extraction_limits(archive.stat().st_size, *limits)
            if len(members) > max_members:
                raise _too_big(archive, f"{len(members)} members", max_members, ENV_MAX_FILES)
            if sum(member[2] for member in members) > max_bytes:
                raise _too_big(archive, f"{sum(member[2] for member in members)} bytes", max_bytes, ENV_MAX_BYTES)
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.extracting-"))
            try:
                _unpack(bundle, members, staging, archive, max_bytes, progress)
                content = _content_root(staging) if strip_top else staging
                os.chmod(content, 0o755)  # mkdtemp's 0700 is not what a data set folder should have
                _move_into_place(content, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)  # our own folder: plain files and folders only
    except _CORRUPT_ARCHIVE_ERRORS as error:
        raise DownloadError(
            f"cannot extract '{archive}' ({error}); the file is corrupt or incomplete. "
            "Delete it and download again (or use --force)."
        ) from error


def extract_archive(archive: str | os.PathLike, destination: str | os.PathLike, *, max_bytes: int | None = None,
                    max_members: int | None = None, progress: bool = False) -> None:
    """Extract a ``.zip`` or ``.tar[.gz|.bz2|.xz]`` archive into ``destination``, safely.

    Every member is checked before anything is written: only plain files and folders with
    relative names are accepted; symbolic and hard links, devices, FIFOs, absolute paths and
    ``..`` components raise :class:`UnsafeArchiveError`, and more than ``max_bytes`` unpacked or
    ``max_members`` members raise :class:`ArchiveLimitError` (defaults: :func:`extraction_limits`).
    Files get normal permissions whatever modes the archive records; they are written into a
    fresh hidden folder that is then moved into ``destination``, never through a link there.
    ``progress`` shows a bar (files, rate, ETA) on stderr.

    Raises:
        UnsafeArchiveError, ArchiveLimitError: see above.
        DownloadError: the archive is corrupt or not an archive.
    """
    archive, destination = Path(archive), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    _extract_into(archive, destination, (max_bytes, max_members), strip_top=False, progress=progress)


def _content_root(staging: Path) -> Path:
    """The folder holding the data: the archive's single top-level folder, or staging itself."""
    entries = [entry for entry in staging.iterdir() if entry.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return staging


def _move_into_place(content: Path, target: Path) -> None:
    """Rename ``content`` to ``target``, or merge it file by file into an existing ``target``:
    after checking that no link, and no file where the archive has a folder, is in the way."""
    if not target.exists():
        os.replace(content, target)
        return
    walk = [(Path(folder).relative_to(content), dirs, files) for folder, dirs, files in os.walk(content)]
    for relative, dirs, files in walk:
        for name in [*dirs, *files]:
            there = target / relative / name
            if there.is_symlink():
                raise DownloadError(
                    f"'{there}' is a symbolic link; i2i never writes through links into a data set folder. Move the "
                    "link away (what it points to is not touched) and run again, or extract to a new --root."
                )
            if name in dirs and there.exists() and not there.is_dir():
                raise DownloadError(f"'{there}' is a file where the archive has a folder; move it away and run again")
    for relative, _dirs, files in walk:
        (target / relative).mkdir(mode=0o755, exist_ok=True)
        for name in files:
            os.replace(content / relative / name, target / relative / name)


# ----------------------------------------------------------------------------- the entry point


def _obtain_archive(
    info: DatasetInfo, archive: Path, checksum_path: Path, expected: str | None, recorded: str | None,
    *, base_url: str | None, force: bool, progress: bool,
) -> str:
    """The archive in place and verified (reused, or downloaded); returns its SHA-256."""
    if archive.is_file() and not force:
        say(f"{info.name}: using the existing archive '{archive}'", progress)
        actual = sha256_file(archive)
        check_sha256(actual, expected, recorded, archive, checksum_path, hint=_MISMATCH_HINT)
    else:
        folder_url = (base_url or os.environ.get(ENV_BASE_URL) or info.base_url).rstrip("/")
        url = f"{folder_url}/{info.filename}"
        advice = (
            "Check your internet connection, point to a mirror with --base-url URL (or the "
            f"{ENV_BASE_URL} environment variable), or download the file yourself to '{archive}' "
            "and run the command again."
        )
        if info.note:
            advice = f"Note: {info.note}. {advice}"
        part = archive.with_name(archive.name + ".part")
        say(f"{info.name}: downloading {url}", progress)
        actual = fetch(url, part, progress=progress, advice=advice)
        try:
            check_sha256(actual, expected, recorded, archive, checksum_path, hint=_MISMATCH_HINT)
        except ChecksumError:
            part.unlink(missing_ok=True)  # a bad download must not look like a good archive
            raise
        os.replace(part, archive)
    return actual


def _discard(error: UnsafeArchiveError, archive: Path, new_record: Path | None, downloaded: bool,
             made_parent: bool) -> UnsafeArchiveError:
    """Remove what this run made for an archive that is not a data set (the archive only when
    this run downloaded it); returns the error, saying what was kept."""
    if new_record is not None:
        new_record.unlink(missing_ok=True)  # the checksum of a bad archive must not vouch for it later
    if not downloaded:
        return type(error)(f"{error} Your archive '{archive}' was left in place.")
    archive.unlink(missing_ok=True)
    if made_parent:
        with contextlib.suppress(OSError):
            archive.parent.rmdir()
    return type(error)(f"{error} Nothing was kept.")


def download_dataset(
    name: str,
    root: str | os.PathLike = "datasets",
    *,
    base_url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
    keep_archive: bool = True,
    max_bytes: int | None = None,
    max_members: int | None = None,
) -> Path:
    """Download, verify and extract a public data set; returns its folder ``root/NAME``.

    Args:
        name: catalogue name (see :func:`list_datasets`), e.g. ``"facades"``, ``"horse2zebra"``,
            ``"cyclegan/maps"``.
        root: parent folder for archives and data sets.
        base_url: folder URL to download ``FILENAME`` from instead of the official server
            (a mirror, or a local server in tests); default: ``$I2I_DATASETS_URL`` or the official one.
        sha256: expected SHA-256 of the archive (64 hex digits); verified when given.
        force: download and extract again even when ``root/NAME`` exists (files the archive
            contains are replaced; other files in the folder are kept).
        progress: show a progress bar (rate, ETA) and status lines on stderr.
        keep_archive: keep the archive after extraction (lets later runs re-extract and verify
            without downloading); the ``.sha256`` record is kept either way.
        max_bytes, max_members: the most the archive may unpack to (default: see
            :func:`extraction_limits`).

    Returns:
        The data set folder, ``root / NAME``.

    Raises:
        UnknownDatasetError: ``name`` is not in the catalogue.
        DownloadError: offline, server error, checksum mismatch (:class:`ChecksumError`),
            unsafe archive (:class:`UnsafeArchiveError`, :class:`ArchiveLimitError`) or corrupt archive.
    """
    info = get_dataset_info(name)
    expected = normalize_sha256(sha256, "sha256") if sha256 else info.sha256
    target = Path(root) / info.name
    archive = target.parent / info.filename
    checksum_path = target.parent / f"{PurePosixPath(info.name).name}.sha256"

    if target.exists() and not target.is_dir():
        raise DownloadError(f"'{target}' exists and is a file; move it away so the data set can be extracted there")
    if target.is_dir() and not force:
        say(f"{info.name}: already present at '{target}' (use --force to download it again)", progress)
        return target

    made_parent = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    recorded = read_recorded_sha256(checksum_path)
    downloading = force or not archive.is_file()
    actual = _obtain_archive(info, archive, checksum_path, expected, recorded, base_url=base_url, force=force,
                             progress=progress)
    if recorded is None:
        write_text_atomic(checksum_path, f"{actual}  {archive.name}\n")
        say(f"{info.name}: sha256 {actual} (recorded in '{checksum_path}')", progress)

    say(f"{info.name}: extracting to '{target}'", progress)
    try:
        _extract_into(archive, target, (max_bytes, max_members), strip_top=True, progress=progress)
    except UnsafeArchiveError as error:
        if isinstance(error, ArchiveLimitError):  # maybe genuine and large: kept for a run with a higher limit
            raise
        raise _discard(error, archive, checksum_path if recorded is None else None, downloading, made_parent) from None

    if not keep_archive:
        archive.unlink(missing_ok=True)
    say(f"{info.name}: ready at '{target}'", progress)
    return target
