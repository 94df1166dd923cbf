"""What an image file's bytes say about it before it is decoded: size, frame count, completeness.

Decoders allocate the whole image before they read a single pixel, so the size has to be known
first: a 115 KB PNG can declare 3.9 GB of pixels. These functions walk the header structures of
PNG, JPEG, BMP, WebP, GIF and TIFF (classic and BigTIFF) and never decompress anything.

* :func:`stored_size`: ``(width, height)`` as stored (before any orientation tag), or None when the
  format is unknown or the header is damaged (the decoder then decides).
* :func:`frame_count`: images in the file: APNG frames (``acTL``), GIF images, animated WebP
  frames (``ANMF``), full-resolution TIFF pages (the IFD chain, reduced-resolution thumbnails not
  counted); 1 for everything else.
* :func:`png_truncated`, :func:`jpeg_truncated`: the chunk/marker structure ends before its end
  marker. :func:`png_exif`: the payload of a PNG's ``eXIf`` chunk.
"""
from __future__ import annotations

import struct
from typing import Iterator

__all__ = [
    "PNG_SIGNATURE", "JPEG_SOI", "TIFF_MAGIC", "stored_size", "frame_count", "png_truncated", "jpeg_truncated",
    "png_exif",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_GIF_MAGIC = (b"GIF87a", b"GIF89a")
_MAX_IFDS = 100_000  # a bound for damaged or looping TIFF IFD chains


# ----------------------------------------------------------------------------- PNG


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(type, payload start, payload length)`` of each complete chunk, up to and including IEND."""
    pos, size = len(PNG_SIGNATURE), len(data)
    while pos + 8 <= size:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        yield kind, pos + 8, length
        if kind == b"IEND":
            return
        pos += 12 + length  # length + type + payload + CRC


def png_truncated(data: bytes) -> bool:
    """True when the PNG chunk list runs past the end of the data before its IEND chunk."""
    for kind, start, length in _png_chunks(data):
        if start + length + 4 > len(data):
            return True
        if kind == b"IEND":
            return False  # bytes after IEND are tolerated, as every decoder does
    return True


def png_exif(data: bytes) -> bytes | None:
    """The payload of a PNG's ``eXIf`` chunk, or None. Walks the chunk list only: Pillow would
    decode the whole image to find an eXIf chunk placed after the pixel data."""
    for kind, start, length in _png_chunks(data):
        if kind == b"eXIf":
            return data[start : start + length]
    return None


def _png_frames(data: bytes) -> int:
    for kind, start, length in _png_chunks(data):
        if kind == b"acTL" and length >= 8:  # animation control: number of frames first
            return max(1, int.from_bytes(data[start : start + 4], "big"))
        if kind == b"IDAT":  # acTL must come before the image data
            return 1
    return 1


# ----------------------------------------------------------------------------- JPEG


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int]]:
    """``(marker, position after the marker)`` of each segment up to the first scan; stops at damage."""
    pos, size = 2, len(data)
    while pos < size and data[pos] == 0xFF:
        while pos < size and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            return
        marker = data[pos]
        pos += 1
        yield marker, pos
        if marker == 0xD9 or marker == 0xDA:  # end of image, start of scan
            return
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM / RSTn carry no length
            continue
        if pos + 2 > size:
            return
        pos += int.from_bytes(data[pos : pos + 2], "big")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    for marker, pos in _jpeg_segments(data):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and pos + 7 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])  # length, precision, H, W
            return (width, height) if height else None  # height 0: given later by a DNL marker
    return None


def jpeg_truncated(data: bytes) -> bool:
    """True when the JPEG marker structure ends before its end-of-image (EOI) marker.

    The segments are walked by their lengths (so an EXIF thumbnail's own EOI inside APP1 does
    not count) and entropy-coded scan data is skipped to the next real marker. Only running off
    the end counts as truncation; other oddities are left to the decoder to judge.
    """
    size = len(data)
    pos = 2  # after SOI
    while pos < size:
        if data[pos] != 0xFF:
            return False  # not a marker where one should be: corrupt, but not our call
        while pos < size and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            return True
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            return False
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM / RSTn carry no length
            continue
        if pos + 2 > size:
            return True
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            return False
        pos += length
        if pos > size:
            return True
        if marker == 0xDA:  # start of scan: skip entropy-coded data up to the next marker
            pos = _skip_scan(data, pos)
            if pos < 0:
                return True
    return True


def _skip_scan(data: bytes, pos: int) -> int:
    """The position of the marker after entropy-coded data starting at ``pos``; -1 at the end."""
    size = len(data)
    while True:
        ff = data.find(b"\xff", pos)
        if ff < 0 or ff + 1 >= size:
            return -1
        following = data[ff + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos = ff + 2  # stuffed 0xFF byte or restart marker: still scan data
        elif following == 0xFF:
            pos = ff + 1  # fill byte before a marker
        else:
            return ff


# ----------------------------------------------------------------------------- TIFF


def _tiff_ifds(data: bytes) -> Iterator[dict[int, int]]:
    """The single-valued integer tags of each IFD in the main chain (SubIFDs are not followed)."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    count_format, entry_size, next_format = ("Q", 20, "Q") if big else ("H", 12, "I")
    offset = struct.unpack(order + ("Q" if big else "I"), data[8:16] if big else data[4:8])[0]
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) < _MAX_IFDS:
        seen.add(offset)
        count_size = struct.calcsize(count_format)
        if offset + count_size > len(data):
            return
        (count,) = struct.unpack_from(order + count_format, data, offset)
        entries = offset + count_size
        if entries + count * entry_size + struct.calcsize(next_format) > len(data):
            return
        tags: dict[int, int] = {}
        for k in range(count):
            at = entries + k * entry_size
            tag, kind = struct.unpack_from(order + "HH", data, at)
            number = struct.unpack_from(order + ("Q" if big else "I"), data, at + 4)[0]
            value_at = at + (12 if big else 8)
            value_format = {3: "H", 4: "I", 16: "Q"}.get(kind)  # SHORT, LONG, LONG8
            if value_format and number == 1:
                tags[tag] = struct.unpack_from(order + value_format, data, value_at)[0]
        yield tags
        offset = struct.unpack_from(order + next_format, data, entries + count * entry_size)[0]


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    for tags in _tiff_ifds(data):
        if 256 in tags and 257 in tags:  # ImageWidth, ImageLength
            return tags[256], tags[257]
        return None
    return None


def _tiff_pages(data: bytes) -> int:
    # NewSubfileType bit 0 marks a reduced-resolution copy (a thumbnail), not a page of its own.
    return max(1, sum(1 for tags in _tiff_ifds(data) if not tags.get(254, 0) & 1))


# ----------------------------------------------------------------------------- GIF and WebP


def _gif_frames(data: bytes) -> int:
    """Image descriptors in a GIF, walked block by block (no LZW decoding)."""
    size, frames = len(data), 0
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # global colour table
    while pos < size:
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            frames += 1
            if pos + 10 > size:
                break
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        else:
            break  # damaged: count what was found
        while pos < size and data[pos]:  # data sub-blocks up to the zero terminator
            pos += data[pos] + 1
        pos += 1
    return max(1, frames)


def _webp_chunks(data: bytes) -> Iterator[tuple[bytes, int]]:
    pos = 12
    while pos + 8 <= len(data):
        kind, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        yield kind, pos + 8
        pos += 8 + length + (length & 1)  # chunks are padded to an even length


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:  # extended: the canvas size, 24 bits each, minus one
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if kind == b"VP8L" and len(data) >= 25:  # lossless: 14 bits each, minus one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and len(data) >= 30:  # lossy: key frame header, 14 bits each
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def _is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


# ----------------------------------------------------------------------------- public


def stored_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` declared by the header of encoded image ``data``, before orientation.

    None for unknown formats and damaged headers.
    """
    try:
        if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data.startswith(JPEG_SOI):
            return _jpeg_size(data)
        if data[:4] in TIFF_MAGIC:
            return _tiff_size(data)
        if data[:6] in _GIF_MAGIC and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
        if _is_webp(data):
            return _webp_size(data)
        if data[:2] == b"BM" and len(data) >= 26:
            if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER
                return struct.unpack("<HH", data[18:22])
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)  # a negative height means rows stored top-down
    except (struct.error, IndexError):
        return None
    return None


def frame_count(data: bytes) -> int:
    """How many images the file holds (see the module docstring); 1 when it is not multi-frame."""
    try:
        if data.startswith(PNG_SIGNATURE):
            return _png_frames(data)
        if data[:4] in TIFF_MAGIC:
            return _tiff_pages(data)
        if data[:6] in _GIF_MAGIC and len(data) > 13:
            return _gif_frames(data)
        if _is_webp(data):
            return max(1, sum(1 for kind, _ in _webp_chunks(data) if kind == b"ANMF"))
    except (struct.error, IndexError):
        return 1
    return 1
