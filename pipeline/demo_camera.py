"""The demo dataset's simulated phone camera: how a DSLR photo becomes the phone side of a pair.

`simulate_phone` is a camera model whose every random choice comes from one
`numpy.random.Generator` (pipeline/demo_data.py seeds it from `seed`, so the same seed writes
byte-identical files).

The simulation follows the light through a small phone camera, in this order (ranges are uniform
per photo; pixel sizes are at the output resolution):

1. Misalignment, sub-pixel shift of up to 2 px per axis. DPED pairs come from two cameras on one
   tripod, matched by SIFT + homography, so they are only approximately aligned; the losses must
   cope with it (DPED blurs before its colour loss for this reason).
2. Defocus, Gaussian blur with sigma 0.5-1.2 px: a tiny lens with a fixed, slightly soft focus.
3. Vignetting, brightness falling off as 1 - v r^2 towards the corners, v = 0.15-0.35: the
   cheap wide-angle lens lets less light reach the sensor edges.
4. Lower effective resolution, area-downsampling to 45-70 % of the size (a small sensor with
   few, large-pitch photosites), later upsampled back: the phone upscales its output, so fine
   detail is gone and what is left is soft, not aliased.
5. Sensor noise at that sensor resolution, in linear light: signal-dependent shot noise
   (variance 0.0005-0.003 x signal) plus read noise (sigma 0.002-0.006), and blotchy chroma
   noise (sigma 0.002-0.006, blurred, zero-mean across channels) as left by demosaicking and
   a weak denoiser. Added before the tone curve, it ends up strongest in the shadows, as on a
   real phone.
6. The phone's colour rendering, consistent across shots as one phone's ISP is (with a little
   per-shot jitter): a warm white balance (red gain 1.06-1.10, blue 0.88-0.92).
7. Its tone curve: a washed-out, low-contrast rendering with gamma 2.2-2.4, blacks lifted by
   0.04-0.06, whites lowered by 0.02-0.04, and saturation reduced to 80-86 %.
8. JPEG compression at quality 40-70 with 4:2:0 chroma subsampling, applied to the whole photo
   before patches are cut: blocking and ringing where a phone encoder spends few bits.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

_GAMMA = 2.2  # sRGB approximated as a pure power law; the simulation runs in linear light


class DemoDataError(ValueError):
    """Parameters or an output folder the demo dataset cannot use; the message says what to do."""


@dataclass(frozen=True)
class PhoneParams:
    """One photo's draw of the phone camera model (see the module docstring for the ranges)."""

    shift: tuple[float, float]  # (dy, dx): phone(y, x) shows the scene at dslr(y - dy, x - dx)
    defocus_sigma: float
    vignetting: float
    resolution: float
    shot_noise: float
    read_noise: float
    chroma_noise: float
    wb_gains: tuple[float, float, float]
    gamma: float
    black_lift: float
    white_drop: float
    saturation: float
    jpeg_quality: int


def draw_phone_params(rng: np.random.Generator) -> PhoneParams:
    """Draws one photo's camera settings; `simulate_phone` draws these first from its generator.

    Colour rendering (white balance, tone curve, saturation) is the phone model's own and varies
    only slightly between shots, as one phone's ISP does: that consistency is what a DPED model
    learns to undo. Focus, noise, resolution, compression and alignment vary per shot.
    """
    u = rng.uniform
    return PhoneParams(
        shift=(float(u(-2.0, 2.0)), float(u(-2.0, 2.0))),
        defocus_sigma=float(u(0.5, 1.2)),
        vignetting=float(u(0.15, 0.35)),
        resolution=float(u(0.45, 0.70)),
        shot_noise=float(u(0.0005, 0.003)),
        read_noise=float(u(0.002, 0.006)),
        chroma_noise=float(u(0.002, 0.006)),
        wb_gains=(float(u(1.06, 1.10)), 1.0, float(u(0.88, 0.92))),
        gamma=float(u(2.2, 2.4)),
        black_lift=float(u(0.04, 0.06)),
        white_drop=float(u(0.02, 0.04)),
        saturation=float(u(0.80, 0.86)),
        jpeg_quality=int(rng.integers(40, 71)),
    )


def simulate_phone(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Renders a DSLR photo (uint8 HxWx3) as the simulated phone would have taken it (same shape)."""
    return _render_phone(rgb, draw_phone_params(rng), rng)


def _render_phone(rgb: np.ndarray, p: PhoneParams, rng: np.random.Generator) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DemoDataError(f"simulate_phone expects uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    x = (rgb.astype(np.float64) / 255.0) ** _GAMMA

    x = ndimage.shift(x, (p.shift[0], p.shift[1], 0.0), order=1, mode="nearest")
    x = ndimage.gaussian_filter(x, (p.defocus_sigma, p.defocus_sigma, 0.0))
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (cy**2 + cx**2)
    x = x * (1.0 - p.vignetting * r2)[..., None]

    sensor = (max(1, round(h * p.resolution)), max(1, round(w * p.resolution)))
    x = _resize(x, sensor, Image.Resampling.BOX)
    x = np.clip(x, 0.0, 1.0)
    x = x + rng.standard_normal(x.shape) * np.sqrt(p.shot_noise * x + p.read_noise**2)
    chroma = ndimage.gaussian_filter(rng.standard_normal(x.shape), (1.0, 1.0, 0.0))
    chroma -= chroma.mean(axis=2, keepdims=True)
    x = x + chroma * (p.chroma_noise / max(float(chroma.std()), 1e-12))

    x = np.clip(x * np.asarray(p.wb_gains), 0.0, 1.0)
    y = p.black_lift + (1.0 - p.black_lift - p.white_drop) * x ** (1.0 / p.gamma)
    luma = y @ np.array([0.299, 0.587, 0.114])
    y = luma[..., None] + p.saturation * (y - luma[..., None])
    y = _resize(y, (h, w), Image.Resampling.BICUBIC)

    out = np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)
    return _decode(_encode(out, quality=p.jpeg_quality, subsampling=2))


def _resize(x: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Resizes float HxWxC channel by channel in Pillow's float mode (exact and deterministic)."""
    channels = [np.asarray(Image.fromarray(x[..., c].astype(np.float32), mode="F")
                           .resize((size[1], size[0]), resample)) for c in range(x.shape[2])]
    return np.stack(channels, axis=-1).astype(np.float64)


def _encode(rgb: np.ndarray, quality: int, subsampling: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).copy()
