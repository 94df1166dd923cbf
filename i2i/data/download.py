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
    Downloads stream to ``ARCHIVE.part`` and are renamed only after they are complete and
    verified; an interrupted download keeps the ``.part`` file and the next run resumes it (HTTP
    ``Range``). The transfer itself is :mod:`i2i.fetch`, shared with the model catalogue.
    Archive members with absolute paths, ``..`` components or links pointing outside are
    rejected before anything is extracted. Extraction goes to a hidden staging folder that
    is renamed into place, so a data set folder is never half-written. Nothing the user made is
    deleted; ``force=True`` downloads and extracts again over the existing folder, replacing only
    the files the archive contains.
"""
from __future__ import annotations

import difflib
import gzip
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from i2i.errors import UsageError
from i2i.fetch import (
    ChecksumError,
    DownloadError,
    check_sha256,
    fetch,
    normalize_sha256,
    read_recorded_sha256,
    say,
    sha256_file,
    write_text_atomic,
)

__all__ = [
    "CYCLEGAN_BASE_URL",
    "DATASETS",
    "ENV_BASE_URL",
    "PIX2PIX_BASE_URL",
    "ChecksumError",
    "DatasetInfo",
    "DownloadError",
    "UnknownDatasetError",
    "UnsafeArchiveError",
    "download_dataset",
    "extract_archive",
    "get_dataset_info",
    "list_datasets",
    "sha256_file",
]

PIX2PIX_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
CYCLEGAN_BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
ENV_BASE_URL = "I2I_DATASETS_URL"

# tarfile.FilterError exists only where extraction filters do (3.10.12+, 3.11.4+).
_TAR_FILTER_ERROR: type[Exception] | tuple[()] = getattr(tarfile, "FilterError", ())
_CORRUPT_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError)
_MISMATCH_HINT = "The download is corrupt or the file on the server changed; check the --sha256 value and retry."


class UnsafeArchiveError(DownloadError):
    """The archive has members that would land outside the target folder."""


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


def _check_member_path(name: str, archive: Path) -> None:
    """Reject member names that would escape the extraction folder."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        raise UnsafeArchiveError(f"refusing to extract '{archive}': member '{name}' has an absolute path")
    if ".." in PurePosixPath(normalized).parts:
        raise UnsafeArchiveError(f"refusing to extract '{archive}': member '{name}' contains '..'")


def _check_tar_members(members: list[tarfile.TarInfo], archive: Path) -> None:
    for member in members:
        _check_member_path(member.name, archive)
        if member.issym() or member.islnk():
            target = member.linkname.replace("\\", "/")
            if member.issym():  # symlink targets are relative to the link's own folder
                target = str(PurePosixPath(member.name).parent / target)
            if target.startswith("/") or ".." in PurePosixPath(os.path.normpath(target)).parts:
                raise UnsafeArchiveError(
                    f"refusing to extract '{archive}': link '{member.name}' points outside the archive "
                    f"('{member.linkname}')"
                )
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(
                f"refusing to extract '{archive}': member '{member.name}' is a device or FIFO, not a file"
            )


def extract_archive(archive: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Extract a ``.zip`` or ``.tar[.gz|.bz2|.xz]`` archive into ``destination``, safely.

    Every member is checked before anything is written: absolute paths, ``..`` components,
    links pointing outside and device files are rejected with :class:`UnsafeArchiveError`.

    Raises:
        UnsafeArchiveError: see above.
        DownloadError: the archive is corrupt or not an archive.
    """
    archive, destination = Path(archive), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                infos = bundle.infolist()
                for info in infos:
                    _check_member_path(info.filename, archive)
                for info in infos:
                    bundle.extract(info, destination)
        else:
            with tarfile.open(archive, "r:*") as bundle:
                members = bundle.getmembers()
                _check_tar_members(members, archive)
                if hasattr(tarfile, "data_filter"):  # Python's own checks too, where available
                    bundle.extractall(destination, members=members, filter="data")
                else:
                    bundle.extractall(destination, members=members)
    except UnsafeArchiveError:
        raise
    except _TAR_FILTER_ERROR as error:
        raise UnsafeArchiveError(f"refusing to extract '{archive}': {error}") from error
    except _CORRUPT_ARCHIVE_ERRORS as error:
        raise DownloadError(
            f"cannot extract '{archive}' ({error}); the file is corrupt or incomplete. "
            "Delete it and download again (or use --force)."
        ) from error


def _content_root(staging: Path) -> Path:
    """The folder holding the data: the archive's single top-level folder, or staging itself."""
    entries = [entry for entry in staging.iterdir() if entry.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return staging


def _move_into_place(content: Path, target: Path) -> None:
    """Rename ``content`` to ``target``, or merge it file by file into an existing ``target``."""
    if not target.exists():
        os.replace(content, target)
        return
    for folder, _dirs, files in os.walk(content):
        relative = Path(folder).relative_to(content)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            os.replace(Path(folder) / name, target / relative / name)


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


def download_dataset(
    name: str,
    root: str | os.PathLike = "datasets",
    *,
    base_url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
    keep_archive: bool = True,
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

    Returns:
        The data set folder, ``root / NAME``.

    Raises:
        UnknownDatasetError: ``name`` is not in the catalogue.
        DownloadError: offline, server error, checksum mismatch (:class:`ChecksumError`),
            unsafe archive (:class:`UnsafeArchiveError`) or corrupt archive.
    """
    info = get_dataset_info(name)
    expected = normalize_sha256(sha256, "sha256") if sha256 else info.sha256
    root = Path(root)
    target = root / info.name
    archive = target.parent / info.filename
    checksum_path = target.parent / f"{PurePosixPath(info.name).name}.sha256"

    if target.exists() and not target.is_dir():
        raise DownloadError(f"'{target}' exists and is a file; move it away so the data set can be extracted there")
    if target.is_dir() and not force:
        say(f"{info.name}: already present at '{target}' (use --force to download it again)", progress)
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    recorded = read_recorded_sha256(checksum_path)

    actual = _obtain_archive(info, archive, checksum_path, expected, recorded, base_url=base_url, force=force,
                             progress=progress)

    if recorded is None:
        write_text_atomic(checksum_path, f"{actual}  {archive.name}\n")
        say(f"{info.name}: sha256 {actual} (recorded in '{checksum_path}')", progress)

    say(f"{info.name}: extracting to '{target}'", progress)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.extracting-"))
    try:
        extract_archive(archive, staging)
        _move_into_place(_content_root(staging), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # our own staging folder only

    if not keep_archive:
        archive.unlink(missing_ok=True)
    say(f"{info.name}: ready at '{target}'", progress)
    return target
