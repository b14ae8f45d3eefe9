"""PSNR and SSIM: one definition for training logs, the TFMA Evaluator and export checks.

Images are float in [0, 1] (max value 1.0), shaped [B, H, W, C]; functions return one value per
example. Identical images give PSNR = inf and SSIM = 1.0. SSIM uses tf.image.ssim's 11x11
window, so images must be at least 11 pixels on each side.

For TFMA 0.52 (which accepts only tf_keras metric classes as custom metrics) name them as
    MetricConfig(class_name="PSNR", module="phone2dslr.trainer.metrics")  # and "SSIM"
They compare y_true (the DSLR image) with y_pred (the model output) as given: clip the served
output to [0, 1] in the serving signature so TFMA and the training logs see the same images.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

MAX_VAL = 1.0


def psnr(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per-example PSNR in dB of images in [0, 1] (tf.image.psnr with max_val 1)."""
    return tf.image.psnr(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=MAX_VAL)


def ssim(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per-example SSIM of images in [0, 1] (tf.image.ssim with max_val 1, default window)."""
    return tf.image.ssim(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=MAX_VAL)


def enhancement_metrics(enhanced: tf.Tensor, phone: tf.Tensor, dslr: tf.Tensor) -> dict[str, tf.Tensor]:
    """Per-example quality of the output and, for reference, of the untouched phone input."""
    return {
        "psnr": psnr(enhanced, dslr),
        "ssim": ssim(enhanced, dslr),
        "psnr_input": psnr(phone, dslr),
        "ssim_input": ssim(phone, dslr),
    }


class _ImageMean(keras.metrics.Mean):
    """Mean over examples of a per-example image metric of (y_true, y_pred)."""

    _fn = staticmethod(psnr)

    def __init__(self, name: str, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(type(self)._fn(y_true, y_pred), sample_weight=sample_weight)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}


class PSNR(_ImageMean):
    """Mean PSNR (dB) of y_pred against y_true, images in [0, 1]."""

    _fn = staticmethod(psnr)

    def __init__(self, name: str = "psnr", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)


class SSIM(_ImageMean):
    """Mean SSIM of y_pred against y_true, images in [0, 1]."""

    _fn = staticmethod(ssim)

    def __init__(self, name: str = "ssim", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)


# The Evaluator also judges what the model adds over the untouched phone photo. TFMA hands a metric
# one prediction tensor, so the serving signature's `enhanced_and_input` output stacks the enhanced
# image and the phone input on the channel axis ([..., :3] and [..., 3:]); these classes split it.
def _enhanced(y_pred: tf.Tensor) -> tf.Tensor:
    return y_pred[..., :3]


def _input(y_pred: tf.Tensor) -> tf.Tensor:
    return y_pred[..., 3:]


class PSNRGain(_ImageMean):
    """Mean of PSNR(enhanced) - PSNR(phone input) in dB, from a stacked [..., 6] prediction."""

    _fn = staticmethod(lambda t, p: psnr(_enhanced(p), t) - psnr(_input(p), t))

    def __init__(self, name: str = "psnr_gain", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)


class SSIMGain(_ImageMean):
    """Mean of SSIM(enhanced) - SSIM(phone input), from a stacked [..., 6] prediction."""

    _fn = staticmethod(lambda t, p: ssim(_enhanced(p), t) - ssim(_input(p), t))

    def __init__(self, name: str = "ssim_gain", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)


class InputPSNR(_ImageMean):
    """Mean PSNR of the phone input against the DSLR target, from a stacked [..., 6] prediction."""

    _fn = staticmethod(lambda t, p: psnr(_input(p), t))

    def __init__(self, name: str = "psnr_input", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)


class InputSSIM(_ImageMean):
    """Mean SSIM of the phone input against the DSLR target, from a stacked [..., 6] prediction."""

    _fn = staticmethod(lambda t, p: ssim(_input(p), t))

    def __init__(self, name: str = "ssim_input", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
