"""Exact tiled inference: full-resolution photos through a generator with memory bounded by the tile.

A 2048x1536 photo through a DPED-shaped generator keeps several 64-channel activations of the whole
image alive (805 MB each in float32). Tiling bounds that by the tile size, and for the generators
here it is exact, not an approximation with blended seams:

Normalization-free generators (stride 1, 'same' padding: the trained DPED and WESPE generators).
One output pixel depends only on the input pixels within `radius` = receptive_field // 2 of it
(trainer.blocks.receptive_field walks the model's conv layers; for an exported SavedModel or
TFLite file the radius is read off its graph, see `graph_radius` / `tflite_radius`). So the image
is cut into tiles that overlap by at least 2 * radius, each tile's output is cropped by at least
`radius` on every side that lies inside the image, and the crops partition the output. The crop
matters because every conv zero-pads the tile's own border, which is not what the whole-image run
sees there; the error is confined to `radius` pixels from the tile edge. At the image's real
border the whole-image run zero-pads too, so there a tile must *reach the real border* (its
window is clipped to the image, never shifted away from it) and keeps its outermost pixels. All
tiles of an image have one size, at most `tile` per side (the fewest tiles of that size, shrunk
evenly so that little is computed twice), which also keeps a TFLite interpreter from
re-allocating per tile. An image no larger than a tile is one tile: the whole image. The result
equals the whole-image output up to float rounding (conv algorithms differ with the shape), which
the tests check.

Instance-normalized generators (the official DPED weights, export/official_dped.py). Each residual
conv is normalized by its mean and variance over the *whole* image, so tiles normalized by their
own statistics give a different (blocky) result. Keras models are streamed exactly instead
(export/streamed_norm.py, export/stream_plan.py): the graph is cut into stages at its
normalizations, each stage sweeps the photo once in full-width bands of rows (about tile x tile
pixels each) while the normalizations it completes accumulate exact whole-image statistics, and
only what later stages read is kept whole-image (for DPED two 64-channel arrays, float32 or
float16: `storage`). Every layer is computed once, plus a few halo rows per band. A model the
stage plan cannot handle falls back to the older passes: for each normalization layer in order,
the model truncated at that layer's input (earlier layers fixed to their whole-image statistics,
a per-channel affine map) is run tile by tile and the per-channel mean and variance of its output
are accumulated over the tile crops (Chan's parallel update, float64); the last pass runs the
whole model with every normalization fixed. For DPED that costs about 4.6x the convolutions of one
whole-image run plus the tile overlap (measured: 5x the time at 600x800, tile 320). Exported graphs
of such models cannot be cut at a layer, so `graph_radius` / `tflite_radius` report them as not
tileable; export/enhance.py reloads such a SavedModel as Keras when it can, and streams a TFLite file
written with stage signatures (export/tflite_stages.py, export/streamed_tflite.py; the float32 and
float16 variants of such models) on LiteRT.

Photos are held as their 8- or 16-bit samples (3 or 6 bytes a pixel, not float32's 12), in and
out: `tiled_apply` and `tiled_predict` convert each tile to float32 in [0, 1] as it is read
(`float_tile`) and each kept output back to samples as it is stored (`to_samples`), so memory is
the input and output photos plus a few tiles. Whole-image runs (tile <= 0) need float32 of it all.

A layer takes part in the streamed stages (and the passes) by having `fixed_stats(mean, var) -> keras Layer`, the
pointwise layer that normalizes with given statistics (see official_dped.InstanceNormalization).

The tile grid and `tiled_apply` (NumPy only; also fixed-size tiles for models whose input size is
fixed) are in export/tiles.py, the TFLite graph walk in export/tflite_graph.py: neither imports
TensorFlow, so `enhance` with a .tflite file runs on LiteRT alone. Both are re-exported here.
"""
from __future__ import annotations

import weakref
from typing import Any, Sequence

import numpy as np
from numpy.typing import DTypeLike
import tensorflow as tf
import tf_keras as keras

# The NumPy tiling and the TFLite graph walk live in TensorFlow-free modules (enhance with a .tflite
# file imports no TensorFlow); re-exported here, where the Keras and SavedModel callers look for them.
from phone2dslr.export.tflite_graph import not_tileable as _not_tileable, tflite_radius  # noqa: F401
from phone2dslr.export.tiles import (  # noqa: F401
    ImageFn, NotTileableError, OnTile, Span, Tile, _as_batch, float_tile, iter_tiles, spans, tile_count,
    tiled_apply, to_samples)
from phone2dslr.export import stream_plan, streamed_norm
from phone2dslr.trainer.blocks import output_stride, receptive_field


# ---------------------------------------------------------------------------------------------
# Keras models: the radius from the layer graph, and the passes for instance normalization.

def model_radius(model: keras.Model) -> int:
    """Receptive-field radius of a stride-1 functional model (NotTileableError if it has none)."""
    try:
        field, stride = receptive_field(model), output_stride(model)
    except ValueError as e:
        raise NotTileableError(str(e)) from None
    if stride != 1:
        raise NotTileableError(f"model {model.name} has output stride {stride}; tiling needs stride 1")
    return field // 2  # 'same' padding of an even kernel reaches k/2 on one side


def spatial_norm_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers normalizing over the image's positions (they expose `fixed_stats`), in graph order."""
    found = [layer for layer in model.layers if hasattr(layer, "fixed_stats")]
    for layer in found:
        if len(layer._inbound_nodes) != 1:
            raise NotTileableError(f"normalization layer {layer.name} is called {len(layer._inbound_nodes)} "
                                   "times; the tiled passes need each called once")
    return found


def keras_fn(model: keras.Model) -> ImageFn:
    """A Keras model as a numpy function (inference mode)."""
    return lambda x: model(tf.constant(x, tf.float32), training=False).numpy()


def passes(model: keras.Model) -> int:
    """How many sweeps `tiled_predict` makes over the image (1 without normalization; streamed
    stages, or for a model the stage plan cannot handle one pass per normalization plus one)."""
    norms = spatial_norm_layers(model)
    if norms and _streamable(model):
        return len(stream_plan.plan(model).stages)
    return len(norms) + 1


def _streamable(model: keras.Model) -> bool:
    """Whether export/stream_plan.py can plan this model (else the older passes are used)."""
    try:
        stream_plan.plan(model)
    except NotTileableError:
        return False
    return True


def whole_image_stats(model: keras.Model, image: np.ndarray, tile: int,
                      on_tile: OnTile = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exact (mean, variance) over H, W of each normalization layer's input for this image, in tiles."""
    norms = spatial_norm_layers(model)
    stats: list[tuple[np.ndarray, np.ndarray]] = []
    for k in range(len(norms)):
        truncated = _with_fixed_stats(model, norms, stats, tap=k)
        radius = model_radius(truncated)
        count, mean, m2 = 0, None, None
        for _, _, kept in iter_tiles(keras_fn(truncated), image, tile, radius, on_tile):
            values = kept.reshape(-1, kept.shape[-1]).astype(np.float64)
            n_b, mean_b = values.shape[0], values.mean(axis=0)
            m2_b = ((values - mean_b) ** 2).sum(axis=0)
            if mean is None:
                count, mean, m2 = n_b, mean_b, m2_b
            else:  # Chan et al.: merge two partial (count, mean, M2)
                delta, total = mean_b - mean, count + n_b
                mean = mean + delta * (n_b / total)
                m2 = m2 + m2_b + delta ** 2 * (count * n_b / total)
                count = total
        stats.append((mean, m2 / count))
    return stats


def tiled_predict(model: keras.Model, image: np.ndarray, *, tile: int, on_tile: OnTile = None,
                  dtype: DTypeLike = np.float32, storage: DTypeLike = np.float32) -> np.ndarray:
    """A Keras generator over a photo in tiles, exactly as a whole-image call (see module docstring).

    Instance-normalized models are streamed in `passes(model)` sweeps of bands of about tile x tile
    pixels, keeping their whole-image activations as `storage` (float32: exact up to float rounding;
    float16: half the memory, about 60 dB PSNR); others take one tiled pass. tile <= 0: whole image.
    `image` and `dtype` as for `tiled_apply`: returns [1, H, W, C] of `dtype`, float32 by default (the
    model's raw output, not clipped).
    """
    x = _as_batch(image)
    norms = spatial_norm_layers(model)
    if tile <= 0 or (x.shape[1] <= tile and x.shape[2] <= tile):
        out = keras_fn(model)(float_tile(x))
        if on_tile is not None:
            for _ in range(passes(model)):
                on_tile()
        return to_samples(out, dtype)
    if not norms:
        return tiled_apply(keras_fn(model), x, tile=tile, radius=model_radius(model), on_tile=on_tile, dtype=dtype)
    if _streamable(model):
        return streamed_norm.streamed_predict(model, x, band=streamed_norm.band_rows(tile, x.shape[2]),
                                              storage=storage, on_tile=on_tile, dtype=dtype)
    stats = whole_image_stats(model, x, tile, on_tile)
    fixed = _with_fixed_stats(model, norms, stats)
    return tiled_apply(keras_fn(fixed), x, tile=tile, radius=model_radius(fixed), on_tile=on_tile, dtype=dtype)


def tiled_predict_count(model: keras.Model, height: int, width: int, tile: int,
                        storage: DTypeLike = np.float32) -> int:
    """How many tile runs `tiled_predict` makes (for progress bars; `storage` as there)."""
    if tile <= 0 or (height <= tile and width <= tile):
        return passes(model)
    if spatial_norm_layers(model) and _streamable(model):
        return streamed_norm.streamed_count(model, height, width, streamed_norm.band_rows(tile, width), storage)
    radii = pass_radii(model)
    return sum(tile_count(height, width, tile, r) for r in radii)


_PASS_RADII: "weakref.WeakKeyDictionary[keras.Model, list[int]]" = weakref.WeakKeyDictionary()


def pass_radii(model: keras.Model) -> list[int]:
    """Receptive-field radius of each pass of `tiled_predict` (one per normalization layer, then the
    whole model), cached per model: the truncated models are only cloned once for this."""
    if model not in _PASS_RADII:
        norms = spatial_norm_layers(model)
        if not norms:
            _PASS_RADII[model] = [model_radius(model)]
        else:
            dummy = [(np.zeros(layer.input_shape[-1]), np.ones(layer.input_shape[-1])) for layer in norms]
            radii = [model_radius(_with_fixed_stats(model, norms, dummy[:k], tap=k)) for k in range(len(norms))]
            _PASS_RADII[model] = radii + [model_radius(_with_fixed_stats(model, norms, dummy))]
    return _PASS_RADII[model]


def _with_fixed_stats(model: keras.Model, norms: Sequence[keras.layers.Layer],
                      stats: Sequence[tuple[np.ndarray, np.ndarray]], tap: int | None = None) -> keras.Model:
    """The model sharing its weights, with norms[i] fixed to stats[i]; if `tap` is given, truncated
    at the input of norms[tap] (which must be the first norm without stats)."""
    replaced: dict[str, keras.layers.Layer] = {}
    for i, layer in enumerate(norms):
        if i < len(stats):
            replaced[layer.name] = layer.fixed_stats(*stats[i])
        elif tap is not None:
            replaced[layer.name] = keras.layers.Identity(name=f"{layer.name}_tap")
    clone = keras.models.clone_model(model, clone_function=lambda layer: replaced.get(layer.name, layer))
    if tap is None:
        return clone
    return keras.Model(clone.inputs, replaced[norms[tap].name].input, name=f"{model.name}_to_{norms[tap].name}")


# ---------------------------------------------------------------------------------------------
# Exported models: the radius read off the graph (longest path of conv radii), or why there is none.

_TF_POINTWISE = {
    "Placeholder", "Const", "Identity", "IdentityN", "NoOp", "StopGradient", "BiasAdd", "Add", "AddV2",
    "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "Maximum", "Minimum", "Relu", "Relu6", "LeakyRelu", "Elu",
    "Selu", "Tanh", "Sigmoid", "Softplus", "ClipByValue", "Cast", "Neg", "Abs", "Sqrt", "Rsqrt", "Square",
    "SquaredDifference", "Exp", "Log", "Pow", "Erf", "Gelu", "FusedBatchNormV3",
}
_TF_CONV = {"Conv2D", "DepthwiseConv2dNative"}
_TF_GLOBAL = {"Mean", "Sum", "Max", "Min", "Prod", "MatMul", "BatchMatMulV2", "Reshape", "Transpose"}


def graph_radius(concrete_function: Any) -> int:
    """Receptive-field radius of a TF function (e.g. a SavedModel's `enhance_image` signature).

    The function is frozen (variables to constants, calls inlined) and walked from its outputs:
    along the longest path each stride-1 'SAME' Conv2D / depthwise conv adds its padding on the
    wider side, ceil(dilation * (kernel - 1) / 2); pointwise ops add nothing; anything else raises
    NotTileableError naming the op.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(concrete_function)
    graph_def = frozen.graph.as_graph_def()
    nodes = {node.name: node for node in graph_def.node}
    memo: dict[str, int] = {}

    def source(name: str) -> str:
        return name.lstrip("^").split(":")[0]

    def const_shape(name: str) -> list[int]:
        node = nodes[source(name)]
        while node.op == "Identity":
            node = nodes[source(node.input[0])]
        if node.op != "Const":
            raise NotTileableError(f"conv filter {name} is computed ({node.op}), not a constant")
        return [d.size for d in node.attr["value"].tensor.tensor_shape.dim]

    def own(node: Any) -> int:
        if node.op in _TF_POINTWISE:
            return 0
        if node.op not in _TF_CONV:
            raise _not_tileable(node.op, node.name, _TF_GLOBAL)
        strides, dilations = list(node.attr["strides"].list.i), list(node.attr["dilations"].list.i)
        padding = node.attr["padding"].s.decode()
        kh, kw = const_shape(node.input[1])[:2]
        same = padding == "SAME" or (padding == "VALID" and kh == kw == 1)  # 1x1: no padding either way
        if node.attr["data_format"].s.decode() not in ("", "NHWC") or any(s != 1 for s in strides) or not same:
            raise NotTileableError(f"conv {node.name} is not stride-1 'SAME' NHWC ({padding}, strides {strides})")
        dh, dw = (dilations[1], dilations[2]) if dilations else (1, 1)
        return max(dh * (kh - 1) - dh * (kh - 1) // 2, dw * (kw - 1) - dw * (kw - 1) // 2)

    def radius(name: str) -> int:
        name = source(name)
        if name not in memo:
            node = nodes[name]
            memo[name] = own(node) + max([radius(i) for i in node.input if not i.startswith("^")], default=0)
        return memo[name]

    return max(radius(t.op.name) for t in frozen.outputs)
