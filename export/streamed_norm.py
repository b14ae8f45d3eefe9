"""Exact instance norm on full-resolution photos, every layer computed once: row bands, stage by stage.

Instance normalization (trainer/instance_norm.py; aiff22/DPED models.py:120-132)

    IN(x) = scale * (x - mean) / sqrt(var + 1e-3) + shift,  mean, var per channel over all H x W

makes a pixel depend on the whole image. export/stream_plan.py cuts the generator into stages at its
normalizations; here each stage sweeps the image once in full-width bands of rows, top to bottom:

- a band keeping output rows [r0, r1) reads its inputs on rows [r0 - h, r1 + h) clipped to the image
  (h: the stage's receptive-field radius). The stage zero-pads at the window's edge where the
  whole-image run sees real rows, which only changes the h rows next to it: those are dropped. At
  the image's top and bottom the window stops at the border, whose zero padding is the whole-image
  run's own. Columns are never cut, so only rows need a halo.
- the normalizations that open the stage are their per-channel affine (`fixed_stats`), with the
  statistics completed by the previous stage;
- the normalizations whose input the stage completes accumulate its exact per-channel mean and
  variance: tf.nn.moments of each kept row (float32 over W pixels), merged over rows and bands in
  float64 by Chan et al.'s parallel update. This is more exact than the whole-image layer's own
  float32 reduction over H x W pixels: on a 2048x1536 photo, the official generator's first
  normalization input, TF's whole-image moments are off by 3e-4 standard deviations (mean) and
  7e-4 (relative variance) against float64, which alone limits whole-image vs streamed agreement
  to about 80 dB PSNR; on small images the two agree to float rounding (tests: 1e-5);
- what later stages read is stored whole-image ([H, W, C] NumPy arrays, float32, or float16 to
  halve the memory: `storage`). A stage's output takes over the array of an input that no later
  stage reads (same channel count), overwriting it band by band: the kept rows [r0, r1) are
  written at once up to r1 - h, where the next band's window starts, and the last h rows wait in a
  small array until that band has read the input there (`_DelayedRows`; windows are views of the
  arrays, never band-sized copies). For the official DPED generator (8 normalizations) that leaves
  two 64-channel arrays alive at any time (the normalization input and the residual skip): 1.6 GB
  float32 or 0.8 GB float16 on a 2048x1536 photo, against 4-5 GB for a whole-image run, and the
  convolutions of one whole-image run plus 2h / band rows of halo per stage.

The result equals the whole-image model up to float rounding (float32 storage), or within float16
rounding of the stored activations (float16: about 60 dB PSNR on DPED-shaped models); the tests
check both. The photo stays in its 8- or 16-bit samples (`tiles.float_tile` per band) and the
output is written as `dtype` samples band by band (`tiles.to_samples`).
"""
from __future__ import annotations

import mmap
import weakref
from typing import Any, Callable

import numpy as np
from numpy.typing import DTypeLike
import tensorflow as tf
import tf_keras as keras

from phone2dslr.export.stream_plan import Plan, Stage, plan
from phone2dslr.export.tiles import OnTile, _as_batch, float_tile, to_samples

STORAGES = (np.float32, np.float16)
MIN_BAND = 16  # rows; thinner bands spend more on their halo than on their own rows
# A window handed from NumPy to TensorFlow is copied into memory TF gets from malloc; above glibc's
# largest mmap threshold (32 MiB on 64-bit) that is a fresh mmap per band, zero-filled by the kernel
# (measured: 130-row float32 windows of a 2048-wide, 64-channel photo cost ~2 s of system time per
# 512 rows). Bands are thinned so each input window stays below it.
TRANSFER_BYTES = 31 << 20


def band_rows(tile: int, width: int) -> int:
    """Rows per band with about the pixels of a `tile` x `tile` tile (at least MIN_BAND) for a photo
    `width` pixels wide: what --tile means for a streamed model."""
    return max(MIN_BAND, (int(tile) * int(tile)) // max(1, int(width)))


def stage_band(p: Plan, stage: Stage, width: int, band: int, storage: DTypeLike = np.float32) -> int:
    """Rows per band in `stage`: `band`, thinned so that no input window ((rows + 2 * radius) x width
    x channels of `storage`) exceeds TRANSFER_BYTES; at least 1."""
    row_bytes = max([width * p.channels[t] * np.dtype(storage).itemsize for t in stage.inputs if t != p.input_id],
                    default=1)
    return max(1, min(band, TRANSFER_BYTES // row_bytes - 2 * stage.radius))


def streamed_count(model: keras.Model, height: int, width: int, band: int, storage: DTypeLike = np.float32) -> int:
    """How many band runs `streamed_predict` makes (over all stages; for progress bars)."""
    p = plan(model)
    return sum(-(-height // stage_band(p, stage, width, band, storage)) for stage in p.stages)


def _arguments(node: Any, values: dict[str, tf.Tensor]) -> tuple[tuple, dict]:
    """A node's call arguments with its Keras inputs replaced by computed tensors (as Keras'
    Node.map_arguments, without consuming them: one tensor may feed several layers)."""
    if node._single_positional_tensor_passed:
        return (values[node.flat_input_ids[0]],), {}
    flat = list(node._flat_arguments)
    for tensor_id, index in node._keras_inputs_ids_and_indices:
        flat[index] = values[tensor_id]
    args, kwargs = tf.nest.pack_sequence_as((node.call_args, list(node.call_kwargs.values())), flat)
    return tuple(args), dict(zip(node.call_kwargs.keys(), kwargs))


def _stage_fn(p: Plan, stage: Stage, storage: np.dtype) -> Callable[..., Any]:
    """The stage as a tf.function of (input windows [1, h, W, C], gains [C], offsets [C], top, rows):
    returns (stored tensors' kept rows in `storage` dtype, per-row (mean, var) float32 [rows, C]
    per `stage.stats`, the model output's kept rows float32 or an empty tensor). Traced once: H and W are dynamic."""
    opens = {norm.output_id: k for k, norm in enumerate(stage.opens)}

    def run(windows, gains, offsets, top, rows):
        values = {t: tf.cast(w, tf.float32) for t, w in zip(stage.inputs, windows)}
        for node in stage.nodes:
            out = node.flat_output_ids[0]
            if out in opens:  # normalization with known statistics: Rescaling(gain, offset)'s formula
                values[out] = values[node.flat_input_ids[0]] * gains[opens[out]] + offsets[opens[out]]
                continue
            args, kwargs = _arguments(node, values)
            if getattr(node.layer, "_expects_training_arg", False) and "training" not in kwargs:
                kwargs["training"] = False
            values[out] = node.layer(*args, **kwargs)

        def kept(t: str) -> tf.Tensor:
            return tf.cast(values[t][:, top:top + rows], tf.float32)

        stored = [tf.cast(kept(t), storage) for t in stage.stores]
        # Per row (over W pixels): a float32 mean over a whole band (or image) of millions of pixels
        # drifts by ~1e-5 of the variance; rows are merged in float64 (_Moments.add).
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


class _Moments:
    """Per-channel count, mean and M2 (sum of squared deviations), float64, merged band by band
    (Chan, Golub & LeVeque 1979: the parallel variance update)."""

    def __init__(self, channels: int) -> None:
        self.count, self.mean, self.m2 = 0, np.zeros(channels), np.zeros(channels)

    def add(self, width: int, row_means: np.ndarray, row_vars: np.ndarray) -> None:
        """Merge a band: per-row mean and population variance over `width` pixels, [rows, C]."""
        row_means, row_vars = np.asarray(row_means, np.float64), np.asarray(row_vars, np.float64)
        count = width * row_means.shape[0]
        mean = row_means.mean(axis=0)
        m2 = width * (row_vars.sum(axis=0) + ((row_means - mean) ** 2).sum(axis=0))
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * count / total)
        self.count = total

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, population variance) per channel, float64 [C]."""
        return self.mean, self.m2 / self.count


def streamed_predict(model: keras.Model, image: np.ndarray, *, band: int, storage: DTypeLike = np.float32,
                     on_tile: OnTile = None, dtype: DTypeLike = np.float32) -> np.ndarray:
    """An instance-normalized functional generator over a photo, each layer once (module docstring).

    image: [H, W, C] or [1, H, W, C], float in [0, 1] or uint8/uint16 samples (converted per band).
    band: output rows per band (>= 1; any size works, thin bands only cost halo; thinned per stage
    by `stage_band`). storage: float32 (exact up to float rounding) or float16 (half the memory)
    for the whole-image activations kept between stages. on_tile: called after each band of each
    stage (`streamed_count` calls).
    Returns [1, H, W, C'] of `dtype` (float32 by default: the raw output, not clipped).
    Raises NotTileableError when the model has no stage plan (export/stream_plan.py), ValueError
    for band < 1 or another storage dtype.
    """
    storage = np.dtype(storage)
    if band < 1 or storage not in [np.dtype(s) for s in STORAGES]:
        raise ValueError(f"band must be >= 1 rows and storage float32 or float16, got {band}, {storage}")
    p, x = plan(model), _as_batch(image)
    fns = _stage_fns(model, storage)
    height, width = x.shape[1], x.shape[2]
    buffers: dict[str, np.ndarray] = {}
    stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out = np.empty((1, height, width, p.channels[p.output_id]), np.dtype(dtype))
    for stage, fn in zip(p.stages, fns):
        gains, offsets = [], []
        for norm in stage.opens:
            affine = norm.layer.fixed_stats(*stats[norm.output_id])  # a Rescaling(gain, offset=...)
            gains.append(tf.constant(np.broadcast_to(affine.scale, [norm.channels]), tf.float32))
            offsets.append(tf.constant(np.broadcast_to(affine.offset, [norm.channels]), tf.float32))
        delayed = _assign_buffers(p, stage, buffers, (height, width), storage)
        moments = {norm.output_id: _Moments(norm.channels) for norm in stage.stats}
        h, rows = stage.radius, stage_band(p, stage, width, band, storage)
        for r0 in range(0, height, rows):
            r1 = min(height, r0 + rows)
            a0, a1 = max(0, r0 - h), min(height, r1 + h)
            windows = [(float_tile(x[:, a0:a1]) if t == p.input_id else buffers[t][np.newaxis, a0:a1])
                       for t in stage.inputs]
            stored, band_moments, final = fn(windows, gains, offsets, np.int32(r0 - a0), np.int32(r1 - r0))
            safe = max(0, r1 - h) if r1 < height else height  # rows no later band of this stage reads
            for t, value in zip(stage.stores, stored):
                if t in delayed:
                    delayed[t].write(value.numpy()[0], r0, safe)
                else:
                    buffers[t][r0:r1] = value.numpy()[0]
            for norm, (mean, var) in zip(stage.stats, band_moments):
                moments[norm.output_id].add(width, mean.numpy(), var.numpy())
            if stage.final:
                out[:, r0:r1] = to_samples(final.numpy(), out.dtype)
            if on_tile is not None:
                on_tile()
        stats.update({t: m.result() for t, m in moments.items()})
        for t in stage.inputs:  # free what no later stage reads (taken-over arrays live on under their new id)
            if p.last_use.get(t) == stage.index:
                buffers.pop(t, None)
    return out


def _whole_image_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array on its own anonymous mmap (freed with the array): page-aligned, and not
    marked for transparent huge pages, which NumPy does for large arrays. Measured on this project's
    machines: filling a fresh 805 MB NumPy array cost up to 1.8 s of system time (kernel compaction
    for huge pages) against 0.3-0.5 s on plain pages, and TensorFlow's copy of each window was
    about 3x faster from 64-byte aligned rows (Eigen's alignment) than from NumPy's 16-byte offset."""
    nbytes = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return np.frombuffer(mmap.mmap(-1, nbytes), np.uint8)[:int(np.prod(shape)) * np.dtype(dtype).itemsize] \
        .view(dtype).reshape(shape)


def _assign_buffers(p: Plan, stage: Stage, buffers: dict[str, np.ndarray], size: tuple[int, int],
                    storage: np.dtype) -> dict[str, "_DelayedRows"]:
    """Give each tensor the stage stores a whole-image array [H, W, C] of `storage`: the array of an
    input read last by this stage if one has its channel count, else a new one. Returns a
    `_DelayedRows` writer for each stored tensor that took over an input's array."""
    dying = [t for t in stage.inputs if t in buffers and p.last_use.get(t) == stage.index]
    taken: set[str] = set()
    delayed: dict[str, _DelayedRows] = {}
    for t in stage.stores:
        donor = next((d for d in dying if d not in taken and buffers[d].shape[-1] == p.channels[t]), None)
        if donor is None:
            buffers[t] = _whole_image_array((*size, p.channels[t]), storage)
        else:
            taken.add(donor)
            buffers[t] = buffers[donor]
            delayed[t] = _DelayedRows(buffers[t])
    return delayed


class _DelayedRows:
    """Writes a stage's output band by band into the array its input still occupies, in place.

    The band keeping rows [r0, r1) has read the input on rows up to r1 + h; the next band reads it
    from r1 - h on. So output rows below that (`safe`) are written at once, and the last h rows wait
    (`pending`, [start, r1): h rows x W x C) until the next band has read the input there. Writing
    by views only: no band-sized copies of the input are made."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.start, self.pending = array, 0, array[:0].copy()

    def write(self, rows: np.ndarray, r0: int, safe: int) -> None:
        """rows: output rows [r0, r0 + len(rows)) in the array's dtype; safe: rows < safe may be
        overwritten now (non-decreasing from call to call; the image height on the last band)."""
        n = max(0, min(r0, safe) - self.start)  # pending rows that became safe
        self.array[self.start:self.start + n] = self.pending[:n]
        m = max(0, safe - r0)  # new rows that are safe already
        self.array[r0:r0 + m] = rows[:m]
        self.pending = np.concatenate([self.pending[n:], rows[m:]])
        self.start = safe  # pending is now rows [safe, r1): [min(r0, safe), r0) and [max(r0, safe), r1)
