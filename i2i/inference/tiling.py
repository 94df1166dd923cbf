"""Tiles for images that do not fit on the device, and the feathered blending that joins them.

A tiled translation cuts the (padded) input into overlapping square tiles, runs the generator on
a few tiles at a time and blends the outputs back together. Two details make a tiled result match
the untiled one:

* **Grid alignment.** Tile positions and sizes are multiples of the generator's size multiple, so
  every tile sees the same stride-2 sampling grid as the whole image would.
* **Feathering that ignores tile borders.** Near a tile's edge the generator sees padding instead
  of the neighbouring pixels, so the outermost quarter of each overlap gets weight 0 and the
  middle half of the overlap is a linear cross-fade (weights of two neighbours sum to 1 there).
  Pixels that are far from every inner tile edge come from exactly one tile. The image's own
  borders are never feathered.

Everything here works in plain numbers, host arrays and CPU tensors; :func:`blend_tiles` is handed
the function that runs tiles on the device (:mod:`i2i.inference.runner`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["tile_starts", "feather_ramp", "feather_weights", "RowBlender", "blend_tiles"]


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap``.

    ``length`` and ``tile`` are expected to be multiples of ``multiple`` (the translator pads the
    image and rounds the tile first); every start is then a multiple too. The last tile ends
    exactly at ``length``. When ``tile >= length`` there is one tile, starting at 0.
    """
    if tile >= length:
        return [0]
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return sorted(set(starts))


def feather_ramp(size: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D weights of one tile along one axis.

    Sides with a neighbour (``at_start``/``at_end``) get 0 for the outer quarter of the overlap and
    then a linear ramp over the middle half up to 1; the other sides are not feathered.
    """
    weights = torch.ones(size, dtype=torch.float32)
    if overlap <= 0:
        return weights
    distance = torch.arange(size, dtype=torch.float32) + 0.5  # distance of pixel centres from the edge
    ramp = ((distance - overlap / 4) / (overlap / 2)).clamp_(0.0, 1.0)
    if at_start:
        weights = torch.minimum(weights, ramp)
    if at_end:
        weights = torch.minimum(weights, ramp.flip(0))
    return weights


def feather_weights(
    height: int, width: int, overlap: int, *, top: bool, bottom: bool, left: bool, right: bool
) -> torch.Tensor:
    """``(height, width)`` blending weights of one output tile (the outer product of two ramps).

    ``overlap`` is in output pixels; ``top``/``bottom``/``left``/``right`` say which sides have a
    neighbouring tile (only those sides are feathered).
    """
    return torch.outer(feather_ramp(height, overlap, top, bottom), feather_ramp(width, overlap, left, right))


class RowBlender:
    """Blends the output tiles of one image and hands back finished rows, a band at a time.

    Every tile's weight is the outer product of a row ramp and a column ramp, so the sum of the
    weights at a pixel is ``row_total[y] * column_total[x]``: only the two 1-D totals are kept, not
    a weight plane. Tiles arrive in rows of tiles from top to bottom; the band holds ``capacity``
    output rows starting at ``base`` (one tile row), and :meth:`release` hands out rows above the
    next tile row in chunks, so a 4K frame upscaled x4 never needs a full-size float copy.
    """

    def __init__(self, channels: int, capacity: int, row_total: torch.Tensor, column_total: torch.Tensor) -> None:
        self.capacity = capacity
        self.row_total = row_total.clamp_min(1e-12)
        self.column_total = column_total.clamp_min(1e-12)
        self.band = torch.zeros(channels, capacity, column_total.numel())
        self.base = 0  # output row of band[:, 0]

    def add(self, tile: torch.Tensor, row_weights: torch.Tensor, column_weights: torch.Tensor, y: int, x: int) -> None:
        """Add ``tile`` ``(C, h, w)`` (float32, CPU; scaled in place) at output position (y, x)."""
        h, w = tile.shape[-2:]
        top = y - self.base
        if top < 0 or top + h > self.capacity:
            raise ValueError(f"tile rows {y}..{y + h} fall outside the band {self.base}..{self.base + self.capacity}")
        tile.mul_(row_weights[:, None]).mul_(column_weights)
        self.band[:, top : top + h, x : x + w].add_(tile)

    def release(self, end: int | None, emit: Callable[[int, torch.Tensor], None], chunk: int = 256) -> None:
        """Call ``emit(first_row, rows)`` for the finished rows ``[base, end)`` (all held rows when
        ``end`` is None), ``chunk`` rows at a time, then move the band down to start at ``end``."""
        n = self.capacity if end is None else max(0, min(end - self.base, self.capacity))
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            rows = self.band[:, start:stop] / self.row_total[self.base + start : self.base + stop, None]
            emit(self.base + start, rows.div_(self.column_total))
        keep = self.capacity - n
        if keep > 0:
            source = self.band[:, n:]
            self.band[:, :keep] = source if n >= keep else source.clone()  # disjoint slices need no copy
        self.band[:, keep:].zero_()
        self.base += n


def _ramps(length: int, tile: int, starts: list[int], overlap: int, scale: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One ramp per tile along an axis, in output pixels, and their sum (the blend's divisor)."""
    ramps = [feather_ramp(tile * scale, overlap * scale, start > 0, start + tile < length) for start in starts]
    total = torch.zeros(length * scale)
    for start, ramp in zip(starts, ramps):
        total[start * scale : (start + tile) * scale] += ramp
    return ramps, total


class _Output:
    """The host output image, filled band by band as :class:`RowBlender` releases rows."""

    def __init__(self, height: int, width: int, dtype: np.dtype, to_levels: Callable[[torch.Tensor], np.ndarray]) -> None:
        self.height, self.width, self.dtype = height, width, dtype
        self.to_levels = to_levels
        self.array: np.ndarray | None = None

    def emit(self, first: int, rows: torch.Tensor) -> None:
        rows = rows[:, : max(0, self.height - first), : self.width]  # the padding is cropped here
        if rows.shape[1] == 0:
            return
        levels = self.to_levels(rows)
        if self.array is None:
            self.array = np.empty((self.height, self.width, levels.shape[2]), self.dtype)
        self.array[first : first + levels.shape[0]] = levels


def blend_tiles(
    padded: np.ndarray,
    size: tuple[int, int],
    *,
    tile: int,
    overlap: int,
    multiple: int,
    scale: int,
    per_step: int,
    forward: Callable[[np.ndarray], torch.Tensor],
    to_levels: Callable[[torch.Tensor], np.ndarray],
) -> np.ndarray:
    """One padded ``(Hp, Wp, C)`` image through tiles -> the ``scale * size`` output, same dtype.

    ``forward`` takes ``per_step`` tiles ``(n, t, t, C)`` and returns their outputs as float32 CPU
    tensors ``(n, C_out, scale*t, scale*t)``; ``to_levels`` turns blended rows ``(C_out, rows, W)``
    into ``(rows, W, C_out)`` integers. The frame and the blend stay on the host, a band of rows at
    a time. Call it inside ``torch.inference_mode()`` when ``forward`` returns inference tensors.
    """
    hp, wp = padded.shape[:2]
    s = scale
    overlap = min(overlap, tile // 2)
    th, tw = min(tile, hp), min(tile, wp)
    ys = tile_starts(hp, th, overlap, multiple)
    xs = tile_starts(wp, tw, overlap, multiple)
    row_ramps, row_total = _ramps(hp, th, ys, overlap, s)
    column_ramps, column_total = _ramps(wp, tw, xs, overlap, s)
    out = _Output(size[0] * s, size[1] * s, padded.dtype, to_levels)
    blender: RowBlender | None = None
    positions = list(enumerate(xs))
    for row, y in enumerate(ys):
        if blender is not None:
            blender.release(y * s, out.emit)
        for start in range(0, len(positions), per_step):
            chunk = positions[start : start + per_step]
            outputs = forward(np.stack([padded[y : y + th, x : x + tw] for _, x in chunk]))
            if blender is None:
                blender = RowBlender(outputs.shape[1], th * s, row_total, column_total)
            for (column, x), output in zip(chunk, outputs):
                blender.add(output, row_ramps[row], column_ramps[column], y * s, x * s)
            del outputs
    assert blender is not None
    blender.release(None, out.emit)
    assert out.array is not None
    return out.array
