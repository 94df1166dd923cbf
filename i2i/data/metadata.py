"""Colour profiles (ICC) and EXIF carried from an input image into an encoded output.

Works on bytes only: :mod:`i2i.data.io` reads the metadata from the input file (Pillow, header
only) and calls :func:`attach_metadata` on the bytes OpenCV encoded, before writing them. The
pixels are never encoded twice: the metadata goes in as the container's own blocks.

* PNG: ``iCCP`` (the profile, zlib-compressed) and ``eXIf`` chunks right after ``IHDR``.
* JPEG: an ``APP1`` Exif segment and ``APP2`` ``ICC_PROFILE`` segments (a profile over 64 KB is
  split across several, as the ICC specification describes) after ``SOI`` and any ``APP0``.
* WebP: the file becomes the extended format (``VP8X`` with its ICC/EXIF flags), with ``ICCP``
  before the image data and ``EXIF`` after it.
* TIFF: the profile as tag 34675 (a new first IFD at the end of the file that points to the old
  image data). EXIF is not carried into TIFF: its sub-IFD holds offsets that would all move.
* BMP holds neither.

The EXIF orientation is set to 1 (upright): :func:`i2i.data.io.read_image` already turned the
pixels upright, so a carried orientation would rotate them a second time in viewers. A profile for
another colour space than the output's (an RGB profile on a gray output or the reverse) is left out.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

__all__ = ["ImageMetadata", "attach_metadata", "exif_payload", "reset_orientation"]

_EXIF_HEADER = b"Exif\x00\x00"
_ICC_MARKER = b"ICC_PROFILE\x00"
_ORIENTATION = 0x0112
_JPEG_SEGMENT_MAX = 65533  # bytes of payload in one JPEG segment (its length field counts itself)
_TIFF_ICC_TAG = 34675


@dataclass(frozen=True)
class ImageMetadata:
    """An image's ICC profile and EXIF block (the TIFF-structured payload, without ``Exif\\0\\0``)."""

    icc_profile: bytes | None = None
    exif: bytes | None = None

    def __bool__(self) -> bool:
        return bool(self.icc_profile or self.exif)


def exif_payload(raw: bytes | None) -> bytes | None:
    """Pillow's ``info["exif"]`` (with or without the ``Exif\\0\\0`` header) -> the TIFF-structured
    payload with the orientation reset to 1; None when absent or not EXIF."""
    if not raw:
        return None
    payload = raw[len(_EXIF_HEADER):] if raw.startswith(_EXIF_HEADER) else raw
    if payload[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    return reset_orientation(payload)


def reset_orientation(payload: bytes) -> bytes:
    """The EXIF payload with its orientation tag (IFD0, 0x0112) set to 1, every other byte kept."""
    order = "<" if payload[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack_from(order + "I", payload, 4)
        (count,) = struct.unpack_from(order + "H", payload, ifd)
        for index in range(count):
            entry = ifd + 2 + 12 * index
            tag, kind, number = struct.unpack_from(order + "HHI", payload, entry)
            if tag == _ORIENTATION and kind == 3 and number == 1:  # one SHORT, stored in the entry
                patched = bytearray(payload)
                struct.pack_into(order + "H", patched, entry + 8, 1)
                return bytes(patched)
    except struct.error:  # a damaged IFD: carried as it is
        pass
    return payload


def _profile_fits(icc: bytes | None, channels: int) -> bool:
    """True when the profile's colour space (bytes 16-20) is the output's: GRAY for 1 channel, RGB for 3."""
    if not icc or len(icc) < 20:
        return False
    return icc[16:20] == (b"GRAY" if channels == 1 else b"RGB ")


def attach_metadata(extension: str, encoded: bytes, metadata: ImageMetadata, channels: int) -> bytes:
    """``encoded`` (a whole file as OpenCV wrote it) with ``metadata`` added as the format allows.

    ``channels`` is the number of colour channels written (1 or 3; alpha not counted): a profile of
    another colour space is left out.
    """
    icc = metadata.icc_profile if _profile_fits(metadata.icc_profile, channels) else None
    exif = metadata.exif
    if not (icc or exif):
        return encoded
    if extension == ".png":
        return _png(encoded, icc, exif)
    if extension in (".jpg", ".jpeg"):
        return _jpeg(encoded, icc, exif)
    if extension == ".webp":
        return _webp(encoded, icc, exif)
    if extension in (".tif", ".tiff") and icc:
        return _tiff(encoded, icc)
    return encoded


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(encoded: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length and type, its 13 bytes, CRC
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        chunks += _png_chunk(b"eXIf", exif)
    return encoded[:end_of_ihdr] + chunks + encoded[end_of_ihdr:]


def _jpeg_segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _jpeg(encoded: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    segments = b""
    if exif and len(_EXIF_HEADER) + len(exif) <= _JPEG_SEGMENT_MAX:
        segments += _jpeg_segment(0xE1, _EXIF_HEADER + exif)
    if icc:
        step = _JPEG_SEGMENT_MAX - len(_ICC_MARKER) - 2
        parts = [icc[start : start + step] for start in range(0, len(icc), step)]
        if len(parts) <= 255:
            for number, part in enumerate(parts, 1):
                segments += _jpeg_segment(0xE2, _ICC_MARKER + bytes([number, len(parts)]) + part)
    position = 2  # after SOI; a JFIF APP0 segment stays first
    if encoded[2:4] == b"\xff\xe0":
        position = 4 + struct.unpack_from(">H", encoded, 4)[0]
    return encoded[:position] + segments + encoded[position:]


def _webp_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def _webp(encoded: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    chunks: list[tuple[bytes, bytes]] = []
    position = 12
    while position + 8 <= len(encoded):
        kind = encoded[position : position + 4]
        (size,) = struct.unpack_from("<I", encoded, position + 4)
        chunks.append((kind, encoded[position + 8 : position + 8 + size]))
        position += 8 + size + (size & 1)
    kinds = [kind for kind, _ in chunks]
    if b"VP8X" in kinds:
        header = bytearray(chunks.pop(kinds.index(b"VP8X"))[1])
    else:  # a simple file: the extended header needs the canvas size and whether there is alpha
        kind, body = chunks[0]
        if kind == b"VP8L":
            bits = int.from_bytes(body[1:5], "little")
            width, height, alpha = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
        else:  # lossy VP8: the frame size follows the 3-byte frame tag and the start code
            width, height = (int.from_bytes(body[6 + i : 8 + i], "little") & 0x3FFF for i in (0, 2))
            alpha = False
        header = bytearray(10)
        header[0] = 0x10 if alpha else 0
        header[4:7], header[7:10] = (width - 1).to_bytes(3, "little"), (height - 1).to_bytes(3, "little")
    header[0] |= (0x20 if icc else 0) | (0x08 if exif else 0)
    body = _webp_chunk(b"VP8X", bytes(header))
    if icc:
        body += _webp_chunk(b"ICCP", icc)
    body += b"".join(_webp_chunk(kind, data) for kind, data in chunks)
    if exif:
        body += _webp_chunk(b"EXIF", exif)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _tiff(encoded: bytes, icc: bytes) -> bytes:
    """A classic TIFF with a copy of its first IFD, plus the profile tag, appended at the end."""
    if encoded[:4] not in (b"II*\x00", b"MM\x00*"):
        return encoded  # BigTIFF: left as it is
    order = "<" if encoded[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", encoded, 4)
    (count,) = struct.unpack_from(order + "H", encoded, ifd)
    entries = [encoded[ifd + 2 + 12 * i : ifd + 14 + 12 * i] for i in range(count)]
    (next_ifd,) = struct.unpack_from(order + "I", encoded, ifd + 2 + 12 * count)
    data = encoded + (b"\x00" if len(encoded) % 2 else b"")
    profile_at = len(data)
    data += icc + (b"\x00" if len(icc) % 2 else b"")
    entries = [e for e in entries if struct.unpack_from(order + "H", e)[0] != _TIFF_ICC_TAG]
    entries.append(struct.pack(order + "HHII", _TIFF_ICC_TAG, 7, len(icc), profile_at))
    entries.sort(key=lambda e: struct.unpack_from(order + "H", e)[0])  # TIFF wants tags in order
    new_ifd = len(data)
    data += struct.pack(order + "H", len(entries)) + b"".join(entries) + struct.pack(order + "I", next_ifd)
    return data[:4] + struct.pack(order + "I", new_ifd) + data[8:]
