"""Exact instance norm on full-resolution photos with TensorFlow: a Keras generator, stage by stage.

export/stream_plan.py cuts an instance-normalized functional generator into stages at its
normalizations, export/stream_spec.py sweeps the photo once per stage in full-width bands of rows
(the band loop, the exact whole-image statistics, the whole-image activations kept between stages).
This module computes a band of a stage with TensorFlow: the stage's Keras layers as one
tf.function (traced once per model and storage: H and W are dynamic), the normalizations that open
the stage as their per-channel affine (`fixed_stats`) at the statistics the previous stage
completed, and per-row moments (tf.nn.moments over W) of the normalization inputs it completes.
export/streamed_tflite.py does the same on LiteRT for a streamable `.tflite`.

The result equals the whole-image model up to float rounding (float32 storage), or within float16
rounding of the stored activations (float16: about 60 dB PSNR on DPED-shaped models); the tests
check both. On a 2048x1536 photo, the official generator's first normalization input, TF's
whole-image float32 moments are off by 3e-4 standard deviations (mean) and 7e-4 (relative
variance) against float64, which alone limits whole-image vs streamed agreement to about 80 dB PSNR;
on small images the two agree to float rounding (tests: 1e-5).
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

import numpy as np
from numpy.typing import DTypeLike
import tensorflow as tf
import tf_keras as keras

from phone2dslr.export import stream_spec
from phone2dslr.export.stream_plan import Plan, Stage, plan, run_nodes
from phone2dslr.export.stream_spec import STORAGES, band_rows, stage_band  # noqa: F401  (the callers' names)
from phone2dslr.export.tiles import OnTile


def _stage_fn(p: Plan, stage: Stage, storage: np.dtype) -> Callable[..., Any]:
    """The stage as a tf.function of (input windows [1, h, W, C], gains [C], offsets [C], top, rows):
    returns (stored tensors' kept rows in `storage` dtype, per-row (mean, var) float32 [rows, C]
    per `stage.stats`, the model output's kept rows float32 or an empty tensor). Traced once: H and W are dynamic."""
    opens = {norm.output_id: k for k, norm in enumerate(stage.opens)}

    def run(windows, gains, offsets, top, rows):
        values = {t: tf.cast(w, tf.float32) for t, w in zip(stage.inputs, windows)}
        # A normalization with known statistics is Rescaling(gain, offset)'s formula.
        run_nodes(stage, values, lambda norm_out, x: x * gains[opens[norm_out]] + offsets[opens[norm_out]])

        def kept(t: str) -> tf.Tensor:
            return tf.cast(values[t][:, top:top + rows], tf.float32)

        stored = [tf.cast(kept(t), storage) for t in stage.stores]
        # Per row (over W pixels): a float32 mean over a whole band (or image) of millions of pixels
        # drifts by ~1e-5 of the variance; rows are merged in float64 (stream_spec._Moments.add).
        moments = [tf.nn.moments(kept(norm.input_id)[0], axes=[1]) for norm in stage.stats]
        final = kept(p.output_id) if stage.final else tf.zeros([0])
        return stored, moments, final

    def spec(t: str) -> tf.TensorSpec:
        return tf.TensorSpec([1, None, None, p.channels[t]], tf.float32 if t == p.input_id else storage)

    signature = [[spec(t) for t in stage.inputs], [tf.TensorSpec([n.channels], tf.float32) for n in stage.opens],
                 [tf.TensorSpec([n.channels], tf.float32) for n in stage.opens],
                 tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)]
    return tf.function(run, input_signature=signature)


_FNS: "weakref.WeakKeyDictionary[keras.Model, dict[str, list]]" = weakref.WeakKeyDictionary()


def _stage_fns(model: keras.Model, storage: np.dtype) -> list[Callable[..., Any]]:
    per_model = _FNS.setdefault(model, {})
    if storage.name not in per_model:
        p = plan(model)
        fns = [_stage_fn(p, stage, storage) for stage in p.stages]
        # Traced here, once each (the signature leaves H and W open). TF warns about "retracing" when
        # one Python function is traced more than 5 times, which nine stages sharing `run` are not.
        logger, level = tf.get_logger(), tf.get_logger().level
        logger.setLevel("ERROR")
        try:
            for fn in fns:
                fn.get_concrete_function()
        finally:
            logger.setLevel(level)
        per_model[storage.name] = fns
    return per_model[storage.name]


def streamed_count(model: keras.Model, height: int, width: int, band: int, storage: DTypeLike = np.float32) -> int:
    """How many band runs `streamed_predict` makes (over all stages; for progress bars)."""
    return stream_spec.stream_count(plan(model).spec(), height, width, band, storage)


def streamed_predict(model: keras.Model, image: np.ndarray, *, band: int, storage: DTypeLike = np.float32,
                     on_tile: OnTile = None, dtype: DTypeLike = np.float32) -> np.ndarray:
    """An instance-normalized functional generator over a photo, each layer once (export/stream_spec.py).

    image: [H, W, C] or [1, H, W, C], float in [0, 1] or uint8/uint16 samples (converted per band).
    band: output rows per band (>= 1; any size works, thin bands only cost halo; thinned per stage
    by `stage_band`). storage: float32 (exact up to float rounding) or float16 (half the memory)
    for the whole-image activations kept between stages. on_tile: called after each band of each
    stage (`streamed_count` calls).
    Returns [1, H, W, C'] of `dtype` (float32 by default: the raw output, not clipped).
    Raises NotTileableError when the model has no stage plan (export/stream_plan.py), ValueError
    for band < 1 or another storage dtype.
    """
    p = plan(model)
    if np.dtype(storage) not in [np.dtype(s) for s in STORAGES]:
        raise ValueError(f"storage must be float32 or float16, got {np.dtype(storage)}")
    fns = _stage_fns(model, np.dtype(storage))
    affines: dict[int, tuple[list, list]] = {}

    def run(index: int, windows: list, stats: list, top: int, rows: int) -> tuple[list, list, Any]:
        stage = p.stages[index]
        if index not in affines:  # a stage's affines are constant over its bands
            gains, offsets = [], []
            for norm, (mean, var) in zip(stage.opens, stats):
                affine = norm.layer.fixed_stats(mean, var)  # a Rescaling(gain, offset=...)
                gains.append(tf.constant(np.broadcast_to(affine.scale, [norm.channels]), tf.float32))
                offsets.append(tf.constant(np.broadcast_to(affine.offset, [norm.channels]), tf.float32))
            affines[index] = gains, offsets
        stored, moments, final = fns[index](windows, *affines[index], np.int32(top), np.int32(rows))
        return ([v.numpy()[0] for v in stored], [(m.numpy(), v.numpy()) for m, v in moments],
                final.numpy() if stage.final else None)

    return stream_spec.stream(p.spec(), run, image, band=band, storage=storage, on_tile=on_tile, dtype=dtype)
