"""Image quality of enhanced photos against targets: PSNR, pooled PSNR, SSIM, MS-SSIM, as numbers.

The trainer's metric code (trainer/metrics.py: one definition for training logs, TFMA and the
TFLite checks) applied to NumPy images, so the TFLite checks and the run report report numbers that
compare with training and evaluation. TensorFlow runs the metrics.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from phone2dslr.trainer import metrics

QUALITY_KEYS = ("psnr", "psnr_pooled", "ssim", "ms_ssim")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-image PSNR (dB, max value 1.0) of [B, H, W, 3] images; +inf for identical images."""
    return float(np.mean(metrics.psnr(tf.constant(a, tf.float32), tf.constant(b, tf.float32)).numpy()))


def ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean SSIM (max value 1.0) of [B, H, W, 3] images; None below the 11x11 window."""
    if min(a.shape[-3], a.shape[-2]) < metrics.SSIM_FILTER_SIZE:
        return None
    return float(np.mean(metrics.ssim(tf.constant(a, tf.float32), tf.constant(b, tf.float32)).numpy()))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean MS-SSIM (scales as trainer/metrics.py) of [B, H, W, 3] images; None below 11 px."""
    if metrics.ms_ssim_scales(a.shape[-3], a.shape[-2]) == 0:
        return None
    return float(np.mean(metrics.ms_ssim(tf.constant(a, tf.float32), tf.constant(b, tf.float32)).numpy()))


def quality(outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> dict[str, float | None]:
    """Quality of images against their DSLR targets, each pair [1, H, W, 3] in [0, 1] (sizes may differ).

    psnr, ssim, ms_ssim: means over the images (SSIM / MS-SSIM over those of at least 11 px;
    None when there are none); psnr_pooled: PSNR of the MSE pooled over every value of every
    image, so larger images weigh more. All None without images.
    """
    if not outputs:
        return {key: None for key in QUALITY_KEYS}
    pooled = metrics.PooledPSNR()
    for output, target in zip(outputs, targets, strict=True):
        pooled.update_state(target, output)
    ssims = [s for s in (ssim(o, t) for o, t in zip(outputs, targets)) if s is not None]
    ms_ssims = [s for s in (ms_ssim(o, t) for o, t in zip(outputs, targets)) if s is not None]
    return {"psnr": float(np.mean([psnr(o, t) for o, t in zip(outputs, targets)])),
            "psnr_pooled": float(pooled.result().numpy()),
            "ssim": float(np.mean(ssims)) if ssims else None,
            "ms_ssim": float(np.mean(ms_ssims)) if ms_ssims else None}


__all__ = ["QUALITY_KEYS", "psnr", "ssim", "ms_ssim", "quality"]
