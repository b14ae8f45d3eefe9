"""PSNR, pooled PSNR, SSIM and MS-SSIM: one definition for training logs, TFMA, TFLite checks, report.

Images are float in [0, 1] (max value 1.0), shaped [B, H, W, C]. Four numbers, each reported for
the model output and, for reference, for the untouched phone input:

- psnr: mean over images of per-image PSNR (tf.image.psnr). Identical images give +inf.
- psnr_pooled: PSNR of the MSE pooled over every value of every image of the split,
  10 log10(1 / (sum of squared errors / number of values)). This is DPED's `loss_psnr`
  (aiff22/DPED train_model.py:101-106, there pooled over one test batch); one bad image pulls it
  down far more than it pulls down the mean of per-image PSNR.
- ssim: mean per-image single-scale SSIM (tf.image.ssim: 11x11 Gaussian window, sigma 1.5).
- ms_ssim: mean per-image MS-SSIM (tf.image.ssim_multiscale; Wang, Simoncelli and Bovik 2003).

MS-SSIM on patches. The standard index has 5 scales with exponents MS_SSIM_POWER_FACTORS and the
11x11 window at every scale; each scale halves the side (rounding up), so all 5 fit only from
161 px (161, 81, 41, 21, 11). Smaller patches (DPED trains on 100x100, the demo on 50x50) get the
largest number of scales whose coarsest side is still >= 11 px, with the first that-many standard
exponents renormalised to sum 1 (so a similarity s at every scale still gives s): 100 px -> 4
scales (100, 50, 25, 13), 50 px -> 3 (50, 25, 13), 21-40 px -> 2, 11-20 px -> 1 (SSIM itself).
Below 161 px this is therefore not the full 5-scale MS-SSIM. DPED's ssim.py instead keeps all 5
scales and shrinks the window at the ones smaller than 11 px (7x7, sigma 0.95, at 100 px's fifth
scale), and pools each scale over a whole batch and all channels before taking the product.

For TFMA 0.52 (which takes only tf_keras metric classes as custom metrics) name them as
    MetricConfig(class_name="PSNR", module="phone2dslr.trainer.metrics")
TFMA merges a metric over batches by adding its variables (get_weights) element-wise, so every
class here keeps sums only: a Mean's total and count, pooled PSNR's squared-error sum and count.
"""
from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

MAX_VAL = 1.0
SSIM_FILTER_SIZE = 11  # tf.image.ssim's window; ms_ssim keeps it at every scale
# Wang, Simoncelli and Bovik 2003 (also tf.image.ssim_multiscale's default), finest scale first.
MS_SSIM_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


class ImageTooSmallError(ValueError):
    """An image smaller than the SSIM window (11 px) on a side: it has no SSIM or MS-SSIM."""


def psnr(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per-example PSNR in dB, [B] float32, of images in [0, 1] (tf.image.psnr with max_val 1)."""
    return tf.image.psnr(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=MAX_VAL)


def ssim(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per-example SSIM, [B] float32, of images in [0, 1] (tf.image.ssim, 11x11 window)."""
    return tf.image.ssim(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=MAX_VAL)


def squared_error_sum(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per-example sum of squared differences over H, W and C: [B] float64 (exact over a split)."""
    d = tf.cast(a, tf.float64) - tf.cast(b, tf.float64)
    return tf.reduce_sum(tf.square(d), axis=[-3, -2, -1])


def psnr_from_mse(mse: tf.Tensor) -> tf.Tensor:
    """10 log10(MAX^2 / mse) in dB with MAX = 1 (DPED: 20 log10(1 / sqrt(mse))); mse 0 -> +inf."""
    return tf.cast(-10.0 * tf.math.log(tf.cast(mse, tf.float64)) / math.log(10.0), tf.float32)


def ms_ssim_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales an H x W image gets: 0 (too small) to 5 (the full index).

    The largest n <= 5 with ceil(min(H, W) / 2^(n-1)) >= 11, i.e. the 11x11 window fits at the
    coarsest of n scales (tf.image.ssim_multiscale halves each side, rounding up).
    """
    side, n = min(int(height), int(width)), 0
    while n < len(MS_SSIM_POWER_FACTORS) and side >= SSIM_FILTER_SIZE:
        n, side = n + 1, (side + 1) // 2
    return n


def ms_ssim_power_factors(scales: int) -> tuple[float, ...]:
    """Exponents for `scales` scales: the standard five, or the first `scales` renormalised to sum 1."""
    if not 1 <= scales <= len(MS_SSIM_POWER_FACTORS):
        raise ValueError(f"MS-SSIM has 1 to {len(MS_SSIM_POWER_FACTORS)} scales, not {scales}")
    if scales == len(MS_SSIM_POWER_FACTORS):
        return MS_SSIM_POWER_FACTORS
    head = MS_SSIM_POWER_FACTORS[:scales]
    return tuple(w / sum(head) for w in head)


def _ms_ssim_fixed(a: tf.Tensor, b: tf.Tensor, scales: int) -> tf.Tensor:
    return tf.image.ssim_multiscale(a, b, max_val=MAX_VAL, power_factors=ms_ssim_power_factors(scales),
                                    filter_size=SSIM_FILTER_SIZE)


def ms_ssim(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per-example MS-SSIM, [B] float32 in [0, 1], of images in [0, 1] (see the module docstring).

    The number of scales follows the image size (`ms_ssim_scales`); with H and W unknown while
    tracing it is chosen at run time. Raises ImageTooSmallError (or, for sizes known only at run
    time, tf.errors.InvalidArgumentError) for a side below 11 px.
    """
    a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
    height, width = a.shape[-3], a.shape[-2]
    if height is not None and width is not None:
        scales = ms_ssim_scales(height, width)
        if scales == 0:
            raise ImageTooSmallError(f"MS-SSIM needs images of at least {SSIM_FILTER_SIZE}x{SSIM_FILTER_SIZE} "
                                     f"px, got {height}x{width}")
        return _ms_ssim_fixed(a, b, scales)
    shape = tf.shape(a)
    side = tf.minimum(shape[-3], shape[-2])
    check = tf.debugging.assert_greater_equal(
        side, SSIM_FILTER_SIZE, message=f"MS-SSIM needs images of at least {SSIM_FILTER_SIZE} px on a side")
    with tf.control_dependencies([check]):
        # ceil(side / 2^k) >= 11 for k = 0 .. 4, counted: the same rule as ms_ssim_scales
        sides = [(side + 2 ** k - 1) // 2 ** k for k in range(len(MS_SSIM_POWER_FACTORS))]
        scales = tf.add_n([tf.cast(s >= SSIM_FILTER_SIZE, tf.int32) for s in sides])
    branches = [lambda n=n: _ms_ssim_fixed(a, b, n) for n in range(1, len(MS_SSIM_POWER_FACTORS) + 1)]
    return tf.switch_case(scales - 1, branches)


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
    """Mean per-image PSNR (dB) of y_pred against y_true, images in [0, 1]."""

    _fn = staticmethod(psnr)

    def __init__(self, name: str = "psnr", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)


class SSIM(_ImageMean):
    """Mean per-image SSIM of y_pred against y_true, images in [0, 1]."""

    _fn = staticmethod(ssim)

    def __init__(self, name: str = "ssim", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)


class MSSSIM(_ImageMean):
    """Mean per-image MS-SSIM of y_pred against y_true, images in [0, 1] (scales as `ms_ssim`)."""

    _fn = staticmethod(ms_ssim)

    def __init__(self, name: str = "ms_ssim", dtype=None, **kwargs):
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


class MSSSIMGain(_ImageMean):
    """Mean of MS-SSIM(enhanced) - MS-SSIM(phone input), from a stacked [..., 6] prediction."""

    _fn = staticmethod(lambda t, p: ms_ssim(_enhanced(p), t) - ms_ssim(_input(p), t))

    def __init__(self, name: str = "ms_ssim_gain", dtype=None, **kwargs):
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


class InputMSSSIM(_ImageMean):
    """Mean MS-SSIM of the phone input against the DSLR target, from a stacked [..., 6] prediction."""

    _fn = staticmethod(lambda t, p: ms_ssim(_input(p), t))

    def __init__(self, name: str = "ms_ssim_input", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)


class _PooledSquaredError(keras.metrics.Metric):
    """Sums of squared errors and of compared values (float64), weighted per example; nothing else.

    Only sums, so the state of two halves of a split added together is the state of the split:
    that is how Keras sums replicas and how TFMA merges its batches (get_weights, added).
    """

    _ERRORS: tuple[str, ...] = ("squared_error",)

    def __init__(self, name: str, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.sums = [self.add_weight(name=n, shape=(), initializer="zeros", dtype=tf.float64) for n in self._ERRORS]
        self.count = self.add_weight(name="count", shape=(), initializer="zeros", dtype=tf.float64)

    def _pairs(self, y_true, y_pred) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """(target, image) pairs, one per entry of _ERRORS."""
        return [(y_true, y_pred)]

    def update_state(self, y_true, y_pred, sample_weight=None):
        pairs = self._pairs(y_true, tf.convert_to_tensor(y_pred))
        errors = [squared_error_sum(t, p) for t, p in pairs]  # each [B]
        values = tf.cast(tf.reduce_prod(tf.shape(pairs[0][1])[-3:]), tf.float64)  # H * W * C per example
        weight = tf.ones_like(errors[0]) if sample_weight is None else tf.broadcast_to(
            tf.reshape(tf.cast(sample_weight, tf.float64), [-1]), tf.shape(errors[0]))
        updates = [total.assign_add(tf.reduce_sum(weight * e)) for total, e in zip(self.sums, errors)]
        updates.append(self.count.assign_add(tf.reduce_sum(weight) * values))
        return tf.group(updates)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}


class PooledPSNR(_PooledSquaredError):
    """PSNR (dB) of the MSE pooled over every value seen since the last reset; images in [0, 1].

    DPED's loss_psnr (train_model.py:101-106): sum of squared errors / number of values, then
    20 log10(1 / sqrt(mse)); there per test batch, here over the whole split. NaN before any update.
    """

    def __init__(self, name: str = "psnr_pooled", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    def result(self):
        return psnr_from_mse(self.sums[0] / self.count)


class InputPooledPSNR(PooledPSNR):
    """Pooled PSNR of the phone input against the DSLR target, from a stacked [..., 6] prediction."""

    def __init__(self, name: str = "psnr_pooled_input", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    def _pairs(self, y_true, y_pred):
        return [(y_true, _input(y_pred))]


class PooledPSNRGain(_PooledSquaredError):
    """Pooled PSNR(enhanced) - pooled PSNR(phone input) in dB, from a stacked [..., 6] prediction."""

    _ERRORS = ("squared_error", "squared_error_input")

    def __init__(self, name: str = "psnr_pooled_gain", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    def _pairs(self, y_true, y_pred):
        return [(y_true, _enhanced(y_pred)), (y_true, _input(y_pred))]

    def result(self):
        return psnr_from_mse(self.sums[0] / self.count) - psnr_from_mse(self.sums[1] / self.count)


# What the trainer's test_step logs (val_<name> during fit): each metric of the model output and,
# as <name>_input, of the untouched phone input; the same classes TFMA runs.
VALIDATION_METRICS: dict[str, type[keras.metrics.Metric]] = {
    "psnr": PSNR, "psnr_pooled": PooledPSNR, "ssim": SSIM, "ms_ssim": MSSSIM}
