"""Does a TFLite variant tile exactly? Tiled vs whole-image output, and parity for fixed-size variants.

Tiling is exact for a local model (export/tiles.py) as long as each output pixel is computed the
same way whatever tile it falls in. That holds for float kernels (up to float rounding: the
convolution algorithm may change with the shape) and for full-integer int8 (every activation's
quantization range is fixed at conversion). It does not hold for dynamic-range int8: each conv
quantizes its input activations with that tensor's own min/max, computed per call, so each tile is
quantized with its own ranges. `tiled_vs_whole` measures it per variant on the held-out images, so
`tflite_results.json` says which variants tile exactly instead of assuming it.

The tile of the measurement (`check_tile`) is small enough that the held-out patches (DPED: 100x100)
are cut into several tiles. A fixed-size variant is always tiled at its input size; patches smaller
than that are one window mirrored up to it (see export/tiles.py), so its "whole image" is the
SavedModel's whole-image output, and its parity (conversion drift only) is measured against the
SavedModel run on the very same windows (`fixed_references`).

NumPy only (PSNR in float64 here), so this module can run beside the interpreter anywhere.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from phone2dslr.export.tiles import ImageFn, tiled_apply

# A fixed-size variant runs every held-out patch as a whole tile (512 x 512 by default, where DPED's
# patches are 100 x 100), and its parity reference runs the SavedModel on the same windows: it is
# checked on this many of the held-out images, not all of them, to bound the export's time.
FIXED_CHECK_IMAGES = 8
# PSNR at or above this counts as "exact up to float rounding": rounding differences between conv
# algorithms are around 1e-6 (120 dB); measured on XNNPACK, float and full-int8 tiles are bit-identical
# (+inf), while dynamic-range int8 tiles of the demo model differ at 80 dB.
EXACT_PSNR = 100.0


def check_tile(radius: int) -> int:
    """Tile side for the tiling check: above the 2 * radius overlap by max(8, radius) pixels, so a
    patch a few radii wide is cut into several tiles (radius 18, DPED's: 54 px, four per 100 px)."""
    return 2 * radius + max(8, radius)


def psnr64(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB, max value 1.0) of two same-shape images, in float64; +inf when identical."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def tiled_vs_whole(fn: ImageFn, images: Sequence[np.ndarray], wholes: Sequence[np.ndarray], radius: int,
                   fixed: tuple[int, int] | None = None,
                   tiled: Sequence[np.ndarray] | None = None) -> tuple[float, list[int]]:
    """(worst PSNR over the images of `fn` tiled vs `wholes`, the tile [rows, columns] used).

    `images[i]`: float32 [1, H, W, 3] in [0, 1]; `wholes[i]`: the same model's whole-image output;
    `tiled[i]`: its tiled output when already computed (else `fn` is run tiled here). Tiled at
    `check_tile(radius)`, or at `fixed` for a fixed-size model; then an axis shorter than the tile
    is compared up to `radius` px before its end, where the mirrored padding starts to reach (the
    tiling contract, export/tiles.py). +inf when every tiled output equals the whole one.
    """
    tile = fixed or (check_tile(radius), check_tile(radius))
    worst = math.inf
    for i, (image, whole) in enumerate(zip(images, wholes, strict=True)):
        out = tiled[i] if tiled is not None else tiled_apply(fn, image, tile=tile, radius=radius,
                                                              fixed=fixed is not None)
        rows, cols = (_exact_extent(n, t, radius) if fixed else n for n, t in zip(image.shape[1:3], tile))
        worst = min(worst, psnr64(out[:, :rows, :cols], whole[:, :rows, :cols]))
    return worst, list(tile)


def _exact_extent(length: int, tile: int, radius: int) -> int:
    """How much of an axis a fixed-size tiling computes exactly: all of it when at least one tile long."""
    return length if length >= tile else max(1, length - radius)


def fixed_references(reference: ImageFn, images: Sequence[np.ndarray], size: tuple[int, int],
                     radius: int) -> list[np.ndarray]:
    """The reference model (the SavedModel) run on the windows a fixed-size variant of input `size`
    sees (same tiles, same mirrored padding), so parity measures conversion drift alone."""
    return [tiled_apply(reference, image, tile=size, radius=radius, fixed=True) for image in images]


def tiles_exactly(tiled_psnr: float | None) -> bool | None:
    """Whether a measured tiled-vs-whole PSNR means "exact up to float rounding" (None: not measured)."""
    return None if tiled_psnr is None else bool(tiled_psnr >= EXACT_PSNR)


__all__ = ["FIXED_CHECK_IMAGES", "EXACT_PSNR", "check_tile", "psnr64", "tiled_vs_whole", "fixed_references",
           "tiles_exactly"]
