"""Reading and writing image files: the only module where OpenCV's BGR order exists.

Everything outside this module sees images as numpy arrays ``(H, W, C)`` in **RGB(A)** order,
``uint8`` or ``uint16``, or as float tensors ``(C, H, W)`` in a model's value range.

Channels
    ``read_image`` always returns ``(H, W, C)`` with ``C`` in ``{1, 3, 4}``: 1 = gray, 3 = RGB,
    4 = RGBA. Files that store gray + alpha (2 channels, e.g. some TIFFs) are returned as RGBA
    with the gray value copied into R, G and B; OpenCV already does the same for gray + alpha
    PNGs, so every gray + alpha file reads the same way.

Bit depth
    Samples keep the depth they were stored with: 8-bit files read as ``uint8``, 16-bit PNG/TIFF
    as ``uint16`` (all 16 bits kept). Floating-point and signed-integer files (e.g. 32-bit float
    TIFF) are refused with :class:`ImageReadError`, because no scaling to a display range is
    implied by such files; convert them to 16-bit PNG/TIFF first. When a 16-bit image is written
    to a format that only holds 8 bits (JPEG, BMP, WebP) it is scaled, not clipped:
    ``round(v * 255 / 65535)`` (exactly ``v / 257``), so 65535 becomes 255.

Alpha
    The networks see RGB (or gray) only. Callers split the alpha channel off with
    :func:`i2i.imageops.split_alpha`, translate the colour part and put the (possibly resized) alpha back with
    :func:`i2i.imageops.merge_alpha`, so transparency is carried through unchanged. JPEG cannot store alpha:
    :func:`write_image` composites RGBA over a **white** background when writing ``.jpg`` (what
    image viewers show for transparent pixels), instead of exposing whatever colour hides under
    alpha = 0. PNG, TIFF, WebP and BMP keep alpha.

Orientation
    Photos often carry an EXIF orientation tag (0x0112). OpenCV's ``IMREAD_UNCHANGED`` ignores it
    for JPEG, PNG and WebP, so :func:`read_image` reads the tag (with Pillow, tag only) and applies
    the rotation/flip in numpy; the returned array is upright as a viewer would show it. TIFF is
    the exception: OpenCV's TIFF decoder already applies the TIFF Orientation tag (same number,
    0x0112), so it is not applied a second time.

Size limit
    Decoders allocate the whole image first, and a PNG of 115 KB can declare 3.9 GB of pixels.
    :func:`read_image` reads the size from the header (:mod:`i2i.data.headers`, nothing decoded)
    and refuses images of more than :data:`DEFAULT_MAX_PIXELS` = 16384 x 16384 = 268,435,456
    pixels (268 megapixels): a 16K square frame, and twice a 16K UHD frame (15360 x 8640), still
    passes, while the decoded image stays at most 0.75 GiB (8-bit RGB) or 2 GiB (16-bit RGBA).
    ``max_pixels=`` or the ``I2I_MAX_PIXELS`` environment variable raises or lowers it (0: no
    limit of i2i's own; OpenCV keeps its 1-gigapixel limit, ``OPENCV_IO_MAX_IMAGE_PIXELS``).

Metadata
    :func:`read_metadata` reads an input's ICC profile and EXIF (Pillow, header only) and
    ``write_image(..., metadata=...)`` carries them into JPEG, PNG, WebP (and the profile into TIFF)
    without encoding the pixels again, with the EXIF orientation reset to 1 (:mod:`i2i.data.metadata`).

Writing is atomic: the file is encoded in memory, written to a hidden temporary file in the same
folder, flushed, fsynced and renamed over the target, so an interrupted run never leaves a
partial image behind.
"""
from __future__ import annotations

import errno
import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from i2i.data.headers import (
    JPEG_SOI,
    PNG_SIGNATURE,
    TIFF_MAGIC,
    frame_count,
    jpeg_truncated,
    png_exif,
    png_truncated,
    stored_size,
)
from i2i.data.metadata import ImageMetadata, attach_metadata, exif_payload
from i2i.errors import DataError, UsageError
from i2i.files import atomic_write_bytes
from i2i.imageops import MAX_VALUE, check_image_array, to_uint8

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageMetadata",
    "ImageReadError",
    "count_frames",
    "max_pixel_limit",
    "write_problem",
    "is_image_file",
    "list_folder",
    "list_images",
    "read_image",
    "read_image_size",
    "read_metadata",
    "write_image",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Formats that can hold 16-bit samples; everything else is written as 8 bits.
_SIXTEEN_BIT_EXTENSIONS = (".png", ".tif", ".tiff")
_LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp")

_EXIF_ORIENTATION_TAG = 0x0112

#: Images declaring more pixels than this are refused before decoding (see the module docstring).
DEFAULT_MAX_PIXELS = 16384 * 16384
MAX_PIXELS_ENV = "I2I_MAX_PIXELS"


class ImageReadError(DataError):
    """An image file is missing, empty, truncated, not an image, or stored in an unsupported way.

    The message always names the file and the reason.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image '{path}': {reason}")


# ----------------------------------------------------------------------------- reading


def max_pixel_limit(max_pixels: int | None = None) -> int:
    """The decoded-pixel limit: ``max_pixels`` when given, else ``I2I_MAX_PIXELS``, else
    :data:`DEFAULT_MAX_PIXELS`; 0 means no limit of i2i's own.

    Raises:
        UsageError: a negative value, or an ``I2I_MAX_PIXELS`` that is not a whole number.
    """
    if max_pixels is None:
        text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
        if not text:
            return DEFAULT_MAX_PIXELS
        if not text.isdigit():
            raise UsageError(
                f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r} is not a pixel count; set a whole number "
                f"such as {DEFAULT_MAX_PIXELS} (0 for no limit), or unset it"
            )
        return int(text)
    if max_pixels < 0:
        raise UsageError(f"--max-pixels must be a pixel count >= 0 (0: no limit), got {max_pixels}")
    return int(max_pixels)


def _check_pixels(path: Path, width: int, height: int, limit: int) -> None:
    """Refuse an image of ``width`` x ``height`` above ``limit`` pixels (0: no limit)."""
    if limit and width * height > limit:
        raise ImageReadError(
            path,
            f"it is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), more than the limit of "
            f"{limit:,} pixels that keeps a small file from filling the memory when decoded; if the image is "
            f"genuine, raise the limit with --max-pixels {width * height} (or {MAX_PIXELS_ENV})",
        )


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) stored in encoded image bytes; 1 when absent or unreadable."""
    exif_payload = png_exif(data) if data.startswith(PNG_SIGNATURE) else None
    if data.startswith(PNG_SIGNATURE) and exif_payload is None:
        return 1  # most PNGs: no EXIF, nothing to parse
    try:
        from PIL import Image
    except ImportError:  # Pillow is optional for reading: without it orientation is not applied
        return 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decompression-bomb and EXIF parsing warnings
            if exif_payload is not None:
                exif = Image.Exif()
                exif.load(exif_payload)
                value = exif.get(_EXIF_ORIENTATION_TAG, 1)
            else:
                with Image.open(io.BytesIO(data)) as pil_image:  # lazy: parses the header only
                    value = pil_image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        value = int(value)
    except Exception:  # a broken EXIF block must not make a decodable image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored ``(H, W, C)`` image upright according to its EXIF orientation value."""
    if orientation == 2:  # mirrored horizontally
        image = image[:, ::-1]
    elif orientation == 3:  # rotated 180
        image = image[::-1, ::-1]
    elif orientation == 4:  # mirrored vertically
        image = image[::-1]
    elif orientation == 5:  # transpose (mirror + rotate 270 CW)
        image = image.transpose(1, 0, 2)
    elif orientation == 6:  # needs 90 degrees clockwise
        image = np.rot90(image, k=-1)
    elif orientation == 7:  # transverse (mirror + rotate 90 CW)
        image = np.rot90(image, k=2).transpose(1, 0, 2)
    elif orientation == 8:  # needs 90 degrees counter-clockwise
        image = np.rot90(image, k=1)
    return np.ascontiguousarray(image)


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as an upright RGB(A) or gray array.

    Args:
        path: any file OpenCV can decode (PNG, JPEG, BMP, TIFF, WebP, ...); non-ASCII paths work.
        max_pixels: refuse images with more pixels, checked from the header before decoding
            (default: ``I2I_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`; 0: no limit).

    Returns:
        ``(H, W, C)`` array, ``C`` in ``{1, 3, 4}`` (gray, RGB, RGBA), dtype ``uint8`` or
        ``uint16`` as stored (16-bit PNG/TIFF keep 16 bits). Gray + alpha files come back as RGBA.
        The EXIF/TIFF orientation tag is applied (upright as a viewer shows it).

    Raises:
        ImageReadError: the file is missing, a folder, empty, truncated (PNG/JPEG are checked
            structurally), not an image, larger than ``max_pixels``, or has float/signed samples
            or an odd channel count.
    """
    path = Path(path)
    limit = max_pixel_limit(max_pixels)
    if not path.exists():
        raise ImageReadError(path, "file does not exist")
    if path.is_dir():
        raise ImageReadError(path, "it is a folder, not an image file")
    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageReadError(path, f"the file cannot be opened ({error.strerror or error})") from error
    if buffer.size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")
    data = buffer.tobytes()
    if data.startswith(PNG_SIGNATURE) and png_truncated(data):
        raise ImageReadError(path, "file is truncated (PNG data ends before its IEND chunk)")
    if data.startswith(JPEG_SOI) and jpeg_truncated(data):
        raise ImageReadError(path, "file is truncated (JPEG data ends before its end-of-image marker)")
    declared = stored_size(data)
    if declared is not None:
        _check_pixels(path, *declared, limit)

    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as error:  # some malformed headers raise instead of returning None
        raise ImageReadError(path, f"file is corrupt or not an image (OpenCV: {str(error).strip()[-200:]})") from error
    if image is None:
        raise ImageReadError(path, "file is truncated or not an image (OpenCV could not decode it)")
    if declared is None:  # a format whose header is not parsed: check what was decoded
        _check_pixels(path, image.shape[1], image.shape[0], limit)
    if image.dtype not in MAX_VALUE:
        raise ImageReadError(
            path,
            f"samples are {image.dtype}; only 8-bit and 16-bit unsigned images are supported "
            "(convert it to a 16-bit PNG or TIFF first)",
        )
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        pass
    elif channels == 2:  # gray + alpha -> RGBA, matching what OpenCV does for gray+alpha PNG
        gray, alpha = image[:, :, :1], image[:, :, 1:]
        image = np.concatenate([gray, gray, gray, alpha], axis=2)
    elif channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    else:
        raise ImageReadError(path, f"it has {channels} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    if data.startswith(TIFF_MAGIC):
        # OpenCV's TIFF decoder applies the TIFF Orientation tag itself, even with
        # IMREAD_UNCHANGED; rotating again here would undo it.
        return image
    return _apply_orientation(image, _exif_orientation(data))


def _header_size(path: Path) -> tuple[int, int] | None:
    """Upright ``(height, width)`` from the file header via Pillow, or None when not reliable."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(32)
        if head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR":
            width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            orientation = _exif_orientation(path.read_bytes())
            if orientation in (5, 6, 7, 8):
                height, width = width, height
            return height, width
        with open(path, "rb") as handle:
            if handle.read(4) in TIFF_MAGIC:
                # Pillow reports TIFF sizes inconsistently around the Orientation tag (before and
                # after loading differ); only decoding gives the size read_image returns.
                return None
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as pil_image:
                width, height = pil_image.size
                orientation = int(pil_image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # missing, unreadable or unknown to Pillow: let the decoder decide
        return None
    if orientation in (5, 6, 7, 8):  # these orientations swap the axes
        height, width = width, height
    return int(height), int(width)


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file as :func:`read_image` would return it (upright).

    Reads only the header when Pillow understands the file (not for TIFF); otherwise decodes it.

    Raises:
        ImageReadError: as :func:`read_image` when the file has to be decoded and cannot be.
    """
    size = _header_size(Path(path))
    if size is None:
        height, width = read_image(path).shape[:2]
        size = (int(height), int(width))
    return size


_FORMAT_NAMES = {b"\x89PNG": "animated PNG", b"GIF8": "GIF", b"RIFF": "animated WebP"}


def count_frames(path: str | os.PathLike) -> tuple[int, str]:
    """``(frames, kind)`` of an image file: 1 for a still image, N for a multi-page TIFF, an
    animated PNG, GIF or WebP (:func:`read_image` returns the first of them); ``kind`` names the
    format (``"multi-page TIFF"``, ``"animated PNG"`` ...). Read from the header structure only."""
    with open(path, "rb") as handle:
        head = handle.read(4)
        if head[:2] in (JPEG_SOI, b"BM"):  # formats that hold one image
            return 1, ""
        data = head + handle.read()
    kind = "multi-page TIFF" if head in TIFF_MAGIC else _FORMAT_NAMES.get(head, "")
    return frame_count(data), kind


# Disk-level write failures: the whole output place is unusable, not one file.
_WRITE_PROBLEMS = {
    errno.ENOSPC: ("no space left on the device (ENOSPC)", "free some space or choose an output on another disk"),
    getattr(errno, "EDQUOT", -1): ("the disk quota is exceeded (EDQUOT)", "free some space or choose an output on another disk"),
    errno.EROFS: ("the file system is read-only (EROFS)", "choose an output folder on a writable disk"),
    errno.EACCES: ("permission denied (EACCES)", "choose an output folder you may write to, or change its permissions"),
    errno.EPERM: ("operation not permitted (EPERM)", "choose an output folder you may write to, or change its permissions"),
}


def write_problem(error: OSError) -> str | None:
    """``"problem; fix"`` for an error that makes every write to the same place fail (a full,
    read-only or forbidden disk), None for other errors (one file's problem)."""
    found = _WRITE_PROBLEMS.get(error.errno) if isinstance(error, OSError) else None
    return None if found is None else f"{found[0]}; {found[1]}"


# ----------------------------------------------------------------------------- writing


def _composite_on_white(image: np.ndarray) -> np.ndarray:
    """RGBA (uint8/uint16) -> RGB of the same dtype, blended over a white background."""
    max_value = float(MAX_VALUE[image.dtype])
    rgb = image[:, :, :3].astype(np.float32)
    alpha = image[:, :, 3:].astype(np.float32) / max_value
    blended = rgb * alpha + max_value * (1.0 - alpha)
    return np.clip(np.rint(blended), 0, max_value).astype(image.dtype)


def read_metadata(path: str | os.PathLike) -> ImageMetadata:
    """The ICC profile and EXIF of an image file (header only, nothing decoded); empty when it has
    none or cannot be read (a damaged block never stops a run: the pixels still come through)."""
    try:
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as pil_image:
                info = pil_image.info
                return ImageMetadata(info.get("icc_profile") or None, exif_payload(info.get("exif")))
    except Exception:  # noqa: BLE001 - Pillow missing, or a file only OpenCV reads
        return ImageMetadata()


def write_image(
    path: str | os.PathLike, image: np.ndarray, *, quality: int | None = None, metadata: ImageMetadata | None = None
) -> None:
    """Write an RGB(A)/gray array to an image file, atomically.

    Args:
        path: target file; the format comes from the extension (one of :data:`IMAGE_EXTENSIONS`).
            Missing parent folders are created.
        image: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA; ``uint8`` or
            ``uint16``.
        quality: 1-100 for ``.jpg``/``.jpeg``/``.webp`` (OpenCV defaults when None: JPEG 95);
            ignored by the lossless formats.
        metadata: an ICC profile and EXIF (:func:`read_metadata`) to store with the pixels, where
            the format holds them (see the module docstring).

    Format policy: PNG and TIFF store everything as given (16 bits and alpha included). JPEG, BMP
    and WebP hold 8 bits only, so ``uint16`` is scaled to 8 bits (``round(v / 257)``). JPEG holds
    no alpha: RGBA is composited over white. The file is replaced in one step; on failure no
    partial file is left.

    Raises:
        TypeError / ValueError: bad array type, dtype or shape, unknown extension, bad quality.
        OSError: the file cannot be written.
    """
    path = Path(path)
    image = check_image_array(image, f"write_image('{path}')")
    extension = path.suffix.lower()
    if extension not in IMAGE_EXTENSIONS:
        raise DataError(
            f"cannot write '{path}': unknown image extension '{path.suffix}'; "
            f"use one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    if quality is not None:
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
            raise DataError(f"cannot write '{path}': quality must be an integer from 1 to 100, got {quality!r}")

    if extension in (".jpg", ".jpeg") and image.shape[2] == 4:
        image = _composite_on_white(image)
    if extension not in _SIXTEEN_BIT_EXTENSIONS:
        image = to_uint8(image)

    channels = image.shape[2]
    if channels == 3:
        encoded_input = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif channels == 4:
        encoded_input = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    else:
        encoded_input = np.ascontiguousarray(image[:, :, 0])

    params: list[int] = []
    if quality is not None and extension in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif quality is not None and extension == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    try:
        ok, encoded = cv2.imencode(extension, encoded_input, params)
    except cv2.error as error:
        raise DataError(f"cannot write '{path}': OpenCV failed to encode the image ({error})") from error
    if not ok:
        raise DataError(f"cannot write '{path}': OpenCV failed to encode the image as {extension}")
    data = encoded.tobytes()
    if metadata:
        data = attach_metadata(extension, data, metadata, channels=1 if channels == 1 else 3)
    atomic_write_bytes(path, data)



# ----------------------------------------------------------------------------- folders


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name ends in one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """All image files in a folder, sorted: :func:`list_folder`'s images."""
    return list_folder(folder, recursive)[0]


def list_folder(folder: str | os.PathLike, recursive: bool = True) -> tuple[list[Path], list[Path]]:
    """``(images, others)`` in a folder, each sorted: the image files and the other (visible) files.

    Args:
        folder: the folder to search.
        recursive: also search sub-folders (symlinked folders are followed once).

    Returns:
        Sorted paths (``folder / relative``) of files with an image extension (any case), and of
        the files without one (what a folder run leaves out and reports). Hidden files and hidden
        folders (name starting with ``.``) are in neither, which also leaves out the temporary files
        of an unfinished :func:`write_image`.

    Raises:
        FileNotFoundError / NotADirectoryError: with the folder named.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"image folder '{folder}' does not exist")
    if not folder.is_dir():
        raise DataError(f"'{folder}' is a file, not a folder of images")
    found: list[Path] = []
    others: list[Path] = []
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a symlink loop or a folder linked twice
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        root_path = Path(root)
        for name in files:
            if not name.startswith(".") and (root_path / name).is_file():
                (found if is_image_file(name) else others).append(root_path / name)
    return sorted(found), sorted(others)
