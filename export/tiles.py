"""The tile grid and tiled application of an image function: NumPy only, no TensorFlow.

Why tiles are exact for a local model (a stride-1, size-preserving network whose output at a pixel
depends only on the input within `radius` of it) is explained in export/tiling.py, which adds
the Keras and TensorFlow-graph parts (receptive fields of Keras models and SavedModels, the passes
for instance normalization). This module holds what every model kind shares, so that
`phone2dslr enhance` with a `.tflite` file (LiteRT) imports no TensorFlow at all:

- `spans` / `tile_count`: the windows along one axis, overlapping by at least 2 * radius, whose kept
  parts partition the axis;
- `iter_tiles` / `tiled_apply`: run a function tile by tile and assemble the kept parts;
- `float_tile` / `to_samples`: photos are held as 8- or 16-bit samples and converted per tile.

Two tile shapes. By default (`fixed=False`) all windows of an axis have one size of at most `tile`
(the fewest windows, shrunk evenly), and an axis no longer than `tile` is one window: the whole
axis. A model whose input size is fixed (`fixed=True`: a `.tflite` with input [1, T, T, 3], what
the GPU delegate and NNAPI need) gets windows of exactly `tile`; an axis shorter than the tile is
read as one window padded up to the tile by mirroring the image (numpy "symmetric"). The whole-image
run zero-pads every layer at the real border instead, so with a padded window the output within
`radius` of that (padded) border is close to, not equal to, the whole-image output; every other
pixel, and every pixel of an axis at least one tile long, is exact up to float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
from numpy.typing import DTypeLike

ImageFn = Callable[[np.ndarray], np.ndarray]
OnTile = Callable[[], None] | None
Tile = int | tuple[int, int]  # pixels per side, or (rows, columns)


class NotTileableError(ValueError):
    """The model's output at a pixel does not depend on a bounded neighbourhood (or we cannot tell)."""


@dataclass(frozen=True)
class Span:
    """One tile along one axis: input window [read_start, read_stop), output kept [keep_start, keep_stop).

    With fixed-size windows `read_stop` may pass the axis' length: the window is padded there."""

    read_start: int
    read_stop: int
    keep_start: int
    keep_stop: int


def spans(length: int, tile: int, radius: int, fixed: bool = False) -> list[Span]:
    """Tiles along one axis of `length` pixels: windows whose kept parts partition it.

    Each kept part is at least `radius` pixels from its window's edge, unless that edge is the image
    border (window clipped to 0 or `length`), where the zero padding is the whole-image run's own.
    Windows are equal; without `fixed`, at most `tile` (the fewest that can do this, shrunk to the
    smallest equal size that still overlaps by 2 * radius: little recomputation, one tile shape;
    tile <= 0 or an axis no longer than `tile` is one window, the whole axis). With `fixed`, exactly
    `tile`: an axis shorter than that is one window reaching past it (padded, see the module doc).
    Raises ValueError for an empty axis, NotTileableError when `tile` <= 2 * radius (no output kept).
    """
    if length <= 0:
        raise ValueError(f"cannot tile an axis of length {length}")
    if fixed and tile <= 0:
        raise ValueError(f"a fixed tile size must be positive, got {tile}")
    if tile <= 0 or length <= tile:
        return [Span(0, tile if fixed else length, 0, length)]
    if tile <= 2 * radius:
        raise NotTileableError(f"tile {tile} must exceed twice the receptive-field radius ({2 * radius}) "
                               f"to keep any output; use a larger tile")
    count = 1 + -(-(length - tile) // (tile - 2 * radius))
    # the smallest equal window that still overlaps by 2 * radius, unless the model fixes its size
    size = tile if fixed else -(-(length + 2 * radius * (count - 1)) // count)
    starts = [i * (length - size) // (count - 1) for i in range(count)]
    # kept parts meet in the middle of each overlap (every overlap is at least 2 * radius)
    cuts = [0] + [(starts[i] + starts[i - 1] + size) // 2 for i in range(1, count)] + [length]
    return [Span(starts[i], starts[i] + size, cuts[i], cuts[i + 1]) for i in range(count)]


def tile_count(height: int, width: int, tile: Tile, radius: int, fixed: bool = False) -> int:
    """How many tiles `tiled_apply` runs for an image of this size."""
    rows, cols = _pair(tile)
    return len(spans(height, rows, radius, fixed)) * len(spans(width, cols, radius, fixed))


def iter_tiles(fn: ImageFn, image: np.ndarray, tile: Tile, radius: int, on_tile: OnTile = None,
               fixed: bool = False) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Run `fn` tile by tile; yield (rows, cols, kept output [h, w, C]) with rows/cols in image coords.

    `image` may hold integer samples (see `float_tile`): each tile is converted as it is read.
    Raises NotTileableError when `fn` returns another size than the tile it was given."""
    x = _as_batch(image)
    height, width = x.shape[1], x.shape[2]
    tile_rows, tile_cols = _pair(tile)
    for rs in spans(height, tile_rows, radius, fixed):
        for cs in spans(width, tile_cols, radius, fixed):
            window = x[:, rs.read_start:min(rs.read_stop, height), cs.read_start:min(cs.read_stop, width)]
            expect = (rs.read_stop - rs.read_start, cs.read_stop - cs.read_start)
            if window.shape[1:3] != expect:  # a fixed-size window past the border: mirror the image into it
                pad = ((0, 0), (0, expect[0] - window.shape[1]), (0, expect[1] - window.shape[2]), (0, 0))
                window = np.pad(window, pad, mode="symmetric")
            y = np.asarray(fn(float_tile(window)))
            if y.ndim != 4 or y.shape[0] != 1 or tuple(y.shape[1:3]) != expect:
                raise NotTileableError(f"model output {list(y.shape)} for a tile [1, {expect[0]}, {expect[1]}, "
                                       f"{x.shape[3]}]: tiling needs output size == input size")
            kept = y[0, rs.keep_start - rs.read_start:rs.keep_stop - rs.read_start,
                     cs.keep_start - cs.read_start:cs.keep_stop - cs.read_start]
            if on_tile is not None:
                on_tile()
            yield slice(rs.keep_start, rs.keep_stop), slice(cs.keep_start, cs.keep_stop), kept


def tiled_apply(fn: ImageFn, image: np.ndarray, *, tile: Tile, radius: int, on_tile: OnTile = None,
                dtype: DTypeLike = np.float32, fixed: bool = False) -> np.ndarray:
    """`fn` (numpy float32 [1, h, w, C] -> [1, h, w, C']) over `image` ([H, W, C] or [1, H, W, C]) in tiles.

    Exact for any local, stride-1, size-preserving fn whose receptive field is at most 2*radius+1:
    a Keras model, a SavedModel signature, a TFLite interpreter. tile <= 0 runs the whole image
    (not with `fixed`, where every window is exactly `tile`: see `spans` and the module doc).
    `image` is float, or uint8/uint16 samples that `fn` sees as float32 in [0, 1] (`float_tile`, per
    tile: a photo is never held as float32 as a whole). Returns [1, H, W, C'] of `dtype`: float32
    (default) is `fn`'s output as it is; an integer dtype holds it clipped to [0, 1] and rounded to
    the dtype's range, also per tile (`to_samples`), so the output is as small as the photo.
    """
    x = _as_batch(image)
    out: np.ndarray | None = None
    for rows, cols, kept in iter_tiles(fn, x, tile, radius, on_tile, fixed):
        if out is None:
            out = np.empty((1, x.shape[1], x.shape[2], kept.shape[-1]), dtype)
        out[0, rows, cols] = to_samples(kept, out.dtype)
    assert out is not None
    return out


def float_tile(samples: np.ndarray) -> np.ndarray:
    """A (tile of an) image as contiguous float32 for a model: unsigned integer samples (uint8, uint16)
    divided by their maximum (255, 65535) into [0, 1]; float values as they are."""
    if np.issubdtype(samples.dtype, np.unsignedinteger):
        return samples.astype(np.float32) / float(np.iinfo(samples.dtype).max)
    return np.ascontiguousarray(samples, np.float32)


def to_samples(values: np.ndarray, dtype: DTypeLike) -> np.ndarray:
    """Model output as `dtype`: for an unsigned integer dtype, clipped to [0, 1], scaled to its maximum
    and rounded (half to even, as np.round); a float dtype takes the values unchanged (not clipped)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.unsignedinteger):
        return np.round(np.clip(values, 0.0, 1.0) * float(np.iinfo(dtype).max)).astype(dtype)
    return np.asarray(values, dtype)


def _pair(tile: Tile) -> tuple[int, int]:
    return (int(tile[0]), int(tile[1])) if isinstance(tile, tuple) else (int(tile), int(tile))


def _as_batch(image: Any) -> np.ndarray:
    """[1, H, W, C]: unsigned integer samples kept as they are (converted per tile), anything else float32."""
    x = np.asarray(image)
    if not np.issubdtype(x.dtype, np.unsignedinteger):
        x = x.astype(np.float32, copy=False)
    if x.ndim == 3:
        x = x[np.newaxis]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected an image [H, W, C] or [1, H, W, C], got {list(x.shape)}")
    return x


__all__ = ["ImageFn", "OnTile", "Tile", "NotTileableError", "Span", "spans", "tile_count", "iter_tiles",
           "tiled_apply", "float_tile", "to_samples"]
