"""Named pretrained weights, and the one place that turns a model name or URL into a cached file.

``--model NAME`` (``i2i translate / upscale / video / eval / export``) and ``--init-from NAME``
(``i2i train``) accept the names below; ``i2i models --pretrained`` lists them. Each file is
downloaded once into the cache and used from there afterwards.

Names
    pytorch-CycleGAN-and-pix2pix (one generator file each, ``latest_net_G.pth`` in their
    scripts; CycleGAN entries are one direction each): pix2pix ``facades_label2photo``,
    ``sat2map``, ``map2sat``, ``edges2shoes``, ``day2night``; CycleGAN ``horse2zebra``,
    ``zebra2horse``, ``monet2photo``, ``style_monet`` ... Three names are published by both
    projects; the plain names are the pix2pix models and ``cyclegan/sat2map``,
    ``cyclegan/map2sat``, ``cyclegan/facades_label2photo`` the CycleGAN ones. ``pix2pix/NAME``
    and ``cyclegan/NAME`` are accepted for every entry. Real-ESRGAN release files keep their own
    names (``RealESRGAN_x4plus``, ``realesr-general-x4v3``, ``RealESRGAN_x4plus_netD`` ...), also
    as ``realesrgan/NAME``. Names match without regard to case.

Model specs (:func:`resolve_model_spec`)
    A catalogue name; an ``http(s)://`` URL (cached under a name derived from the URL); or
    ``hf://ORG/REPO/FILE`` (``hf://ORG/REPO@REVISION/FILE``), fetched with ``huggingface_hub``
    into its own cache (``pip install 'i2i-toolkit[hub]'``).

The cache
    ``$I2I_HOME/models`` (default ``$XDG_CACHE_HOME/i2i/models``, i.e. ``~/.cache/i2i/models``):
    ``NAME/FILE`` for catalogue entries (``horse2zebra/latest_net_G.pth``,
    ``RealESRGAN_x4plus/RealESRGAN_x4plus.pth``), ``urls/HASH/FILE`` for URLs. A file put there
    by hand is used without downloading. ``$I2I_MODELS_URL`` replaces the official servers with a
    mirror laid out like the cache (``$I2I_MODELS_URL/NAME/FILE``); ``I2I_OFFLINE=1`` forbids
    downloads.

Checksums
    Neither project publishes SHA-256 sums for these files. BasicSR-style file names carry the
    first 8 hex digits of the file's SHA-256 (``ESRGAN_SRx4_DF2KOST_official-ff704c30.pth``), and
    that prefix is pinned and verified. The Real-ESRGAN generator release files (``x4plus``,
    ``x2plus``, ``anime_6B``, ``animevideov3``, ``general-x4v3`` and its ``wdn`` companion) have
    full SHA-256 sums pinned: the digests that many independent projects record for those GitHub
    release assets, all agreeing with each other and with the files' published sizes. For every
    other entry (the pix2pix/CycleGAN generators, ``RealESRNet_x4plus`` and the discriminators)
    the SHA-256 of the first download is recorded beside the file (``FILE.sha256``), reported,
    and verified on every later use. All official URLs are https. Downloads resume after an
    interruption; see :mod:`i2i.fetch`.
"""
from __future__ import annotations

import difflib
import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from i2i.errors import ModelError, UsageError
from i2i.fetch import Downloaded, DownloadError, download_file, say

__all__ = [
    "ENV_HOME",
    "ENV_MODELS_URL",
    "PRETRAINED",
    "PretrainedModel",
    "UnknownModelError",
    "cache_dir",
    "cached_path",
    "close_names",
    "describe_pretrained",
    "download_hf",
    "download_pretrained",
    "download_url",
    "find_pretrained",
    "get_pretrained",
    "list_pretrained",
    "resolve_model_spec",
    "source_url",
]

ENV_HOME = "I2I_HOME"
ENV_MODELS_URL = "I2I_MODELS_URL"

PIX2PIX_URL = "https://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch"
CYCLEGAN_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
REALESRGAN_URL = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_JUNYANZ_LICENSE = "BSD-2-Clause"
_REALESRGAN_LICENSE = "BSD-3-Clause"
_PREFIXES = ("pix2pix", "cyclegan", "realesrgan")


class UnknownModelError(ModelError):
    """The name is in no catalogue; the message lists close matches."""


@dataclass(frozen=True)
class PretrainedModel:
    """One catalogue entry.

    Attributes:
        name: catalogue key and cache folder (``horse2zebra``, ``cyclegan/sat2map``).
        task: ``"pix2pix"``, ``"cyclegan"`` or ``"srgan"`` (super-resolution).
        url: download URL on the official server.
        filename: the file's name in the cache (``latest_net_G.pth``, the release file name).
        scale: output size / input size (1 for translation).
        size_mb: approximate download size in MB (from the parameter count), for listings.
        license: SPDX identifier of the licence the authors publish the weights under.
        sha256: the pinned SHA-256 (see "Checksums" above), or the prefix a file name publishes;
            ``""`` when none is known (the first download's is recorded and verified afterwards).
        description: one line for listings.
        kind: ``"generator"``, or ``"discriminator"`` (for fine-tuning; not a ``--model``).
        note: a caveat shown in listings.
    """

    name: str
    task: str
    url: str
    filename: str
    scale: int = 1
    size_mb: float | None = None
    license: str = ""
    sha256: str = ""
    description: str = ""
    kind: str = "generator"
    note: str = ""

    @property
    def checksum(self) -> str:
        """``pinned`` (full SHA-256), ``prefix`` (published prefix) or ``none`` (recorded at first download)."""
        if not self.sha256:
            return "none"
        return "pinned" if len(self.sha256) == 64 else "prefix"


def _pix2pix(name: str, description: str, key: str | None = None) -> PretrainedModel:
    return PretrainedModel(key or name, "pix2pix", f"{PIX2PIX_URL}/{name}.pth", "latest_net_G.pth", 1, 217.7,
                           _JUNYANZ_LICENSE, "", description)


def _cyclegan(name: str, description: str, key: str | None = None, note: str = "") -> PretrainedModel:
    return PretrainedModel(key or name, "cyclegan", f"{CYCLEGAN_URL}/{name}.pth", "latest_net_G.pth", 1, 45.5,
                           _JUNYANZ_LICENSE, "", description, note=note)


def _realesrgan(
    name: str, release: str, scale: int, size_mb: float, description: str, *, file: str | None = None,
    sha256: str = "", kind: str = "generator", license: str = _REALESRGAN_LICENSE,
) -> PretrainedModel:
    filename = file or f"{name}.pth"
    return PretrainedModel(name, "srgan", f"{REALESRGAN_URL}/{release}/{filename}", filename, scale, size_mb,
                           license, sha256, description, kind)


_CITYSCAPES_NOTE = "trained on Cityscapes, whose terms allow non-commercial use only"

PRETRAINED: dict[str, PretrainedModel] = {
    entry.name: entry
    for entry in (
        # pytorch-CycleGAN-and-pix2pix, scripts/download_pix2pix_model.sh (U-Net 256 generators)
        _pix2pix("facades_label2photo", "facade label maps -> photos (CMP Facades)"),
        _pix2pix("sat2map", "aerial photos -> Google maps"),
        _pix2pix("map2sat", "Google maps -> aerial photos"),
        _pix2pix("edges2shoes", "edge sketches -> shoe photos"),
        _pix2pix("day2night", "daytime -> night-time outdoor scenes"),
        # pytorch-CycleGAN-and-pix2pix, scripts/download_cyclegan_model.sh (ResNet 9-block generators)
        _cyclegan("apple2orange", "apples -> oranges"),
        _cyclegan("orange2apple", "oranges -> apples"),
        _cyclegan("summer2winter_yosemite", "Yosemite in summer -> winter"),
        _cyclegan("winter2summer_yosemite", "Yosemite in winter -> summer"),
        _cyclegan("horse2zebra", "horses -> zebras"),
        _cyclegan("zebra2horse", "zebras -> horses"),
        _cyclegan("monet2photo", "Monet paintings -> photos"),
        _cyclegan("style_monet", "photos -> Monet paintings"),
        _cyclegan("style_cezanne", "photos -> Cezanne paintings"),
        _cyclegan("style_ukiyoe", "photos -> Ukiyo-e prints"),
        _cyclegan("style_vangogh", "photos -> Van Gogh paintings"),
        _cyclegan("sat2map", "aerial photos -> maps (unpaired training)", key="cyclegan/sat2map"),
        _cyclegan("map2sat", "maps -> aerial photos (unpaired training)", key="cyclegan/map2sat"),
        _cyclegan("cityscapes_photo2label", "street scenes -> semantic labels", note=_CITYSCAPES_NOTE),
        _cyclegan("cityscapes_label2photo", "semantic labels -> street scenes", note=_CITYSCAPES_NOTE),
        _cyclegan("facades_photo2label", "facade photos -> label maps"),
        _cyclegan("facades_label2photo", "facade label maps -> photos (unpaired training)",
                  key="cyclegan/facades_label2photo"),
        _cyclegan("iphone2dslr_flower", "iPhone flower photos -> DSLR shallow depth of field"),
        # Real-ESRGAN releases (docs/model_zoo.md, inference_realesrgan.py)
        _realesrgan("RealESRGAN_x4plus", "v0.1.0", 4, 67.0, "RRDBNet, 23 blocks: general photos",
                    sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1"),
        _realesrgan("RealESRGAN_x2plus", "v0.2.1", 2, 67.1, "RRDBNet, 23 blocks: general photos",
                    sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb"),
        _realesrgan("RealESRNet_x4plus", "v0.1.1", 4, 67.0, "RRDBNet, 23 blocks, MSE loss only: smoother"),
        _realesrgan("RealESRGAN_x4plus_anime_6B", "v0.2.2.4", 4, 17.9, "RRDBNet, 6 blocks: anime images",
                    sha256="f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da"),
        _realesrgan("realesr-animevideov3", "v0.2.5.0", 4, 2.5, "SRVGGNetCompact, 16 convs: anime video",
                    sha256="b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d"),
        _realesrgan("realesr-general-x4v3", "v0.2.5.0", 4, 4.9, "SRVGGNetCompact, 32 convs: general, small",
                    sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292"),
        _realesrgan("realesr-general-wdn-x4v3", "v0.2.5.0", 4, 4.9,
                    "weak-denoise companion of realesr-general-x4v3 (blended for --denoise_strength)",
                    sha256="1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca"),
        _realesrgan("ESRGAN_SRx4_DF2KOST_official", "v0.1.1", 4, 67.0, "the official ESRGAN (RRDBNet, DF2K+OST)",
                    file="ESRGAN_SRx4_DF2KOST_official-ff704c30.pth", sha256="ff704c30", license="Apache-2.0"),
        _realesrgan("RealESRGAN_x4plus_netD", "v0.2.2.3", 4, 17.5,
                    "UNetDiscriminatorSN to fine-tune RealESRGAN_x4plus", kind="discriminator"),
        _realesrgan("RealESRGAN_x2plus_netD", "v0.2.2.3", 2, 17.5,
                    "UNetDiscriminatorSN to fine-tune RealESRGAN_x2plus", kind="discriminator"),
        _realesrgan("RealESRGAN_x4plus_anime_6B_netD", "v0.2.2.4", 4, 17.5,
                    "UNetDiscriminatorSN to fine-tune RealESRGAN_x4plus_anime_6B", kind="discriminator"),
    )
}

_LOWER = {name.lower(): name for name in PRETRAINED}


def list_pretrained() -> list[PretrainedModel]:
    """Every entry in catalogue order: pix2pix, CycleGAN, then Real-ESRGAN."""
    return list(PRETRAINED.values())


def find_pretrained(name: str) -> PretrainedModel | None:
    """The entry called ``name`` (case-insensitive; ``pix2pix/``, ``cyclegan/`` and
    ``realesrgan/`` prefixes accepted), or None."""
    key = _LOWER.get(name.lower())
    if key is not None:
        return PRETRAINED[key]
    prefix, _, plain = name.partition("/")
    prefix = prefix.lower()
    if plain and prefix in _PREFIXES:
        task = "srgan" if prefix == "realesrgan" else prefix
        for candidate in (f"{prefix}/{plain}", plain):
            entry = PRETRAINED.get(_LOWER.get(candidate.lower(), ""))
            if entry is not None and entry.task == task:
                return entry
    return None


def close_names(name: str) -> list[str]:
    """Up to three catalogue names that look like ``name``."""
    matches = difflib.get_close_matches(name.lower(), _LOWER, n=3, cutoff=0.6)
    return [_LOWER[match] for match in matches]


def get_pretrained(name: str) -> PretrainedModel:
    """Like :func:`find_pretrained`, but an unknown name raises :class:`UnknownModelError`."""
    entry = find_pretrained(name)
    if entry is None:
        close = close_names(name)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(f"no pretrained model is called '{name}'.{hint} See `i2i models --pretrained`.")
    return entry


# ----------------------------------------------------------------------------- the cache


def cache_dir() -> Path:
    """Where downloaded models live: ``$I2I_HOME/models`` (default ``~/.cache/i2i/models``)."""
    home = os.environ.get(ENV_HOME)
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "i2i")
    return Path(home).expanduser() / "models"


def cached_path(entry: PretrainedModel) -> Path:
    """The file of ``entry`` in the cache (present or not)."""
    return cache_dir().joinpath(*PurePosixPath(entry.name).parts, entry.filename)


def source_url(entry: PretrainedModel) -> str:
    """Where ``entry`` is downloaded from: the mirror in ``$I2I_MODELS_URL``, else the official URL."""
    mirror = os.environ.get(ENV_MODELS_URL, "").strip().rstrip("/")
    return f"{mirror}/{entry.name}/{entry.filename}" if mirror else entry.url


def _by_hand(url: str, path: Path, mirror: bool = False) -> str:
    advice = f"Check your internet connection, or download {url} yourself to '{path}' and run again"
    return advice + (f" (or set {ENV_MODELS_URL} to a mirror laid out like the cache)." if mirror else ".")


def _report(name: str, result: Downloaded, pinned: str, progress: bool) -> None:
    if result.downloaded and pinned:
        kind = "the published SHA-256" if len(pinned) == 64 else f"the published SHA-256 prefix {pinned}"
        say(f"{name}: sha256 {result.sha256} matches {kind}", progress)
    if result.recorded:
        why = "" if pinned else "; no checksum is published for this file, so later uses are verified against this record"
        say(f"{name}: sha256 {result.sha256} recorded in '{result.path}.sha256'{why}", progress)


def download_pretrained(name: str, *, progress: bool = True) -> Path:
    """The cached file of the catalogue entry ``name``, downloaded and verified on first use.

    Raises:
        UnknownModelError: ``name`` is not in the catalogue.
        DownloadError: offline or a server error (the message names the URL and the path where
            the file can be put by hand), an incomplete download (run again to resume), or a
            checksum mismatch (:class:`~i2i.fetch.ChecksumError`).
    """
    entry = get_pretrained(name)
    path = cached_path(entry)
    url = source_url(entry)
    advice = _by_hand(entry.url, path, mirror=True)
    if entry.note:
        advice = f"Note: {entry.note}. {advice}"
    result = download_file(url, path, sha256=entry.sha256 or None, progress=progress, advice=advice, desc=entry.name)
    _report(entry.name, result, entry.sha256, progress)
    return result.path


def _url_file_name(url: str) -> str:
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "model"


def download_url(url: str, *, sha256: str | None = None, progress: bool = True) -> Path:
    """The cached copy of ``url`` (``$I2I_HOME/models/urls/HASH/FILE``), downloaded on first use;
    its SHA-256 is recorded then and verified afterwards (and checked against ``sha256`` if given)."""
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    path = cache_dir() / "urls" / key / _url_file_name(url)
    result = download_file(url, path, sha256=sha256, progress=progress, advice=_by_hand(url, path))
    _report(path.name, result, sha256 or "", progress)
    return result.path


def _parse_hf(spec: str) -> tuple[str, str, str | None]:
    parts = spec[len("hf://"):].split("/")
    if len(parts) < 3 or not all(parts):
        raise UsageError(
            f"'{spec}' is not a Hugging Face file spec: write hf://ORG/REPO/FILE (FILE may contain folders; "
            "hf://ORG/REPO@REVISION/FILE picks a branch, tag or commit)."
        )
    repo, _, revision = parts[1].partition("@")
    return f"{parts[0]}/{repo}", "/".join(parts[2:]), revision or None


def download_hf(spec: str) -> Path:
    """The local path of ``hf://ORG/REPO[@REVISION]/FILE``, fetched by ``huggingface_hub`` into its
    own cache (``$HF_HOME``), which handles resume, authentication and offline mode."""
    repo_id, filename, revision = _parse_hf(spec)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError(
            f"{spec}: hf:// models need the huggingface_hub package: pip install huggingface_hub "
            "(or pip install 'i2i-toolkit[hub]')"
        ) from None
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision))
    except Exception as error:  # the hub's errors subclass requests/httpx errors or OSError
        package = type(error).__module__.split(".")[0]
        if isinstance(error, (OSError, ValueError)) or package in ("huggingface_hub", "requests", "httpx", "urllib3"):
            raise DownloadError(f"cannot get {filename} from the Hugging Face repo {repo_id} ({error}).") from error
        raise


def resolve_model_spec(spec: str, *, progress: bool = True) -> Path | None:
    """The local file a catalogue name, an ``http(s)://`` URL or an ``hf://`` spec stands for
    (downloaded into the cache on first use), or None when ``spec`` is none of these.

    Local paths and bundled names are not looked at here; :func:`i2i.checkpoint.locate_model`
    tries them first, so no name can hide an existing file.
    """
    text = str(spec).strip()
    if find_pretrained(text) is not None:
        return download_pretrained(text, progress=progress)
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme in ("http", "https"):
        return download_url(text, progress=progress)
    if scheme == "hf":
        return download_hf(text)
    return None


# ----------------------------------------------------------------------------- listing


def _size(entry: PretrainedModel) -> str:
    if entry.size_mb is None:
        return "?"
    return f"~{entry.size_mb:.0f} MB" if entry.size_mb >= 10 else f"~{entry.size_mb:.1f} MB"


def describe_pretrained() -> str:
    """The catalogue as a text table: name, task, scale, size, licence, checksum, cached, source."""
    header = ("NAME", "TASK", "SCALE", "SIZE", "LICENCE", "SHA-256", "CACHED", "SOURCE")
    rows = []
    for entry in list_pretrained():
        task = entry.task if entry.kind == "generator" else f"{entry.task} ({entry.kind})"
        path = cached_path(entry)
        checksum = "recorded" if entry.checksum == "none" and path.with_name(path.name + ".sha256").is_file() else entry.checksum
        rows.append((entry.name, task, f"x{entry.scale}", _size(entry), entry.license, checksum,
                     "yes" if path.is_file() else "no", entry.url))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in (header, *rows)]
    notes = [
        "",
        f"Cache: {cache_dir()} (set {ENV_HOME} to move it). Use a name with --model NAME or --init-from NAME.",
        "SHA-256: pinned = the published checksum is verified; prefix = the first digits published in the file "
        "name are verified;",
        "  none = nothing is published: the first download's is recorded beside the file and verified on every "
        "later use (recorded).",
        "Sizes are approximate.",
    ]
    notes += [f"{entry.name}: {entry.note}." for entry in list_pretrained() if entry.note]
    return "\n".join(lines + notes)
