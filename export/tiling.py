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
own statistics give a different (blocky) result. Keras models are still tiled exactly, in passes:
for each normalization layer in order, the model truncated at that layer's input (earlier layers
already fixed to their whole-image statistics, i.e. a per-channel affine map, so the truncated
model is local again) is run tile by tile and the per-channel mean and variance of its output are
accumulated over the tile crops (Chan's parallel update, float64); the last pass runs the whole
model with every normalization fixed. For DPED (8 normalized layers) the passes cost about 4.6x
the convolutions of one whole-image run, plus the tile overlap (measured: 5x the time at 600x800,
tile 320), in exchange for memory bounded by the tile. Exported graphs of such models
cannot be cut at a layer, so `graph_radius` / `tflite_radius` report them as not tileable;
export/enhance.py reloads such a SavedModel as Keras when it can and runs a TFLite file on the
whole image.

Photos are held as their 8- or 16-bit samples (3 or 6 bytes a pixel, not float32's 12), in and
out: `tiled_apply` and `tiled_predict` convert each tile to float32 in [0, 1] as it is read
(`float_tile`) and each kept output back to samples as it is stored (`to_samples`), so memory is
the input and output photos plus a few tiles. Whole-image runs (tile <= 0) need float32 of it all.

A layer takes part in the statistics passes by having `fixed_stats(mean, var) -> keras Layer`, the
pointwise layer that normalizes with given statistics (see official_dped.InstanceNormalization).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from numpy.typing import DTypeLike
import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer.blocks import output_stride, receptive_field

ImageFn = Callable[[np.ndarray], np.ndarray]
OnTile = Callable[[], None] | None


class NotTileableError(ValueError):
    """The model's output at a pixel does not depend on a bounded neighbourhood (or we cannot tell)."""


@dataclass(frozen=True)
class Span:
    """One tile along one axis: input window [read_start, read_stop), output kept [keep_start, keep_stop)."""

    read_start: int
    read_stop: int
    keep_start: int
    keep_stop: int


def spans(length: int, tile: int, radius: int) -> list[Span]:
    """Tiles along one axis of `length` pixels: equal windows of at most `tile` whose kept parts partition it.

    Each kept part is at least `radius` pixels from its window's edge, unless that edge is the image
    border (window clipped to 0 or `length`), where the zero padding is the whole-image run's own.
    The fewest windows of `tile` that can do this are used, then shrunk to the smallest equal size
    that still overlaps by 2 * radius, and spread evenly: little recomputation, one tile shape.
    """
    if length <= 0:
        raise ValueError(f"cannot tile an axis of length {length}")
    if tile <= 0 or length <= tile:
        return [Span(0, length, 0, length)]
    if tile <= 2 * radius:
        raise NotTileableError(f"tile {tile} must exceed twice the receptive-field radius ({2 * radius}) "
                         f"to keep any output; use a larger tile")
    count = 1 + -(-(length - tile) // (tile - 2 * radius))
    size = -(-(length + 2 * radius * (count - 1)) // count)  # smallest equal window that still overlaps
    starts = [i * (length - size) // (count - 1) for i in range(count)]
    # kept parts meet in the middle of each overlap (every overlap is at least 2 * radius)
    cuts = [0] + [(starts[i] + starts[i - 1] + size) // 2 for i in range(1, count)] + [length]
    return [Span(starts[i], starts[i] + size, cuts[i], cuts[i + 1]) for i in range(count)]


def tile_count(height: int, width: int, tile: int, radius: int) -> int:
    """How many tiles `tiled_apply` runs for an image of this size."""
    return len(spans(height, tile, radius)) * len(spans(width, tile, radius))


def iter_tiles(fn: ImageFn, image: np.ndarray, tile: int, radius: int,
               on_tile: OnTile = None) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Run `fn` tile by tile; yield (rows, cols, kept output [h, w, C]) with rows/cols in image coords.

    `image` may hold integer samples (see `float_tile`): each tile is converted as it is read."""
    x = _as_batch(image)
    height, width = x.shape[1], x.shape[2]
    for rs in spans(height, tile, radius):
        for cs in spans(width, tile, radius):
            y = np.asarray(fn(float_tile(x[:, rs.read_start:rs.read_stop, cs.read_start:cs.read_stop])))
            expect = (rs.read_stop - rs.read_start, cs.read_stop - cs.read_start)
            if y.ndim != 4 or y.shape[0] != 1 or tuple(y.shape[1:3]) != expect:
                raise NotTileableError(f"model output {list(y.shape)} for a tile [1, {expect[0]}, {expect[1]}, "
                                       f"{x.shape[3]}]: tiling needs output size == input size")
            kept = y[0, rs.keep_start - rs.read_start:rs.keep_stop - rs.read_start,
                     cs.keep_start - cs.read_start:cs.keep_stop - cs.read_start]
            if on_tile is not None:
                on_tile()
            yield slice(rs.keep_start, rs.keep_stop), slice(cs.keep_start, cs.keep_stop), kept


def tiled_apply(fn: ImageFn, image: np.ndarray, *, tile: int, radius: int, on_tile: OnTile = None,
                dtype: DTypeLike = np.float32) -> np.ndarray:
    """`fn` (numpy float32 [1, h, w, C] -> [1, h, w, C']) over `image` ([H, W, C] or [1, H, W, C]) in tiles.

    Exact for any local, stride-1, size-preserving fn whose receptive field is at most 2*radius+1:
    a Keras model, a SavedModel signature, a TFLite interpreter. tile <= 0 runs the whole image.
    `image` is float, or uint8/uint16 samples that `fn` sees as float32 in [0, 1] (`float_tile`, per
    tile: a photo is never held as float32 as a whole). Returns [1, H, W, C'] of `dtype`: float32
    (default) is `fn`'s output as it is; an integer dtype holds it clipped to [0, 1] and rounded to
    the dtype's range, also per tile (`to_samples`), so the output is as small as the photo.
    """
    x = _as_batch(image)
    out: np.ndarray | None = None
    for rows, cols, kept in iter_tiles(fn, x, tile, radius, on_tile):
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
    """How many tiled passes `tiled_predict` makes over the image (1 without normalization)."""
    return len(spatial_norm_layers(model)) + 1


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
                  dtype: DTypeLike = np.float32) -> np.ndarray:
    """A Keras generator over a photo in tiles, exactly as a whole-image call (see module docstring).

    Instance-normalized models take `passes(model)` tiled passes; others one. tile <= 0: whole image.
    `image` and `dtype` as for `tiled_apply`: returns [1, H, W, C] of `dtype`, float32 by default (the
    model's raw output, not clipped).
    """
    x = _as_batch(image)
    norms = spatial_norm_layers(model)
    if tile <= 0 or (x.shape[1] <= tile and x.shape[2] <= tile):
        out = keras_fn(model)(float_tile(x))
        if on_tile is not None:
            for _ in range(len(norms) + 1):
                on_tile()
        return to_samples(out, dtype)
    if not norms:
        return tiled_apply(keras_fn(model), x, tile=tile, radius=model_radius(model), on_tile=on_tile, dtype=dtype)
    stats = whole_image_stats(model, x, tile, on_tile)
    fixed = _with_fixed_stats(model, norms, stats)
    return tiled_apply(keras_fn(fixed), x, tile=tile, radius=model_radius(fixed), on_tile=on_tile, dtype=dtype)


def tiled_predict_count(model: keras.Model, height: int, width: int, tile: int) -> int:
    """How many tile runs `tiled_predict` makes (for progress bars)."""
    if tile <= 0 or (height <= tile and width <= tile):
        return passes(model)
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

_TFL_POINTWISE = {
    "ADD", "SUB", "MUL", "DIV", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "TANH", "LOGISTIC",
    "MAXIMUM", "MINIMUM", "QUANTIZE", "DEQUANTIZE", "ABS", "NEG", "SQRT", "RSQRT", "SQUARE",
    "SQUARED_DIFFERENCE", "EXP", "LOG", "POW", "LEAKY_RELU", "PRELU", "HARD_SWISH", "ELU", "GELU", "CAST",
}
_TFL_CONV = {"CONV_2D", "DEPTHWISE_CONV_2D"}
_TFL_GLOBAL = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "FULLY_CONNECTED", "RESHAPE",
               "TRANSPOSE", "BATCH_MATMUL"}


def _not_tileable(op: str, name: str, global_ops: set[str]) -> NotTileableError:
    if op in global_ops:
        return NotTileableError(f"op {op} ({name}) mixes all positions (e.g. instance normalization)")
    return NotTileableError(f"op {op} ({name}) has unknown spatial extent")


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


def tflite_radius(model: str | bytes) -> int:
    """Receptive-field radius of a TFLite model's first subgraph, walked in op order (see graph_radius)."""
    from ai_edge_litert import schema_py_generated as schema

    content = model if isinstance(model, (bytes, bytearray)) else tf.io.gfile.GFile(model, "rb").read()
    root = schema.Model.GetRootAs(bytes(content), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = root.Subgraphs(0)
    radius = {int(i): 0 for i in graph.InputsAsNumpy()}
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        code = root.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = [int(i) for i in op.InputsAsNumpy() if i >= 0] if op.InputsLength() else []
        if name in _TFL_POINTWISE:
            extent = 0
        elif name in _TFL_CONV:
            table = op.BuiltinOptions()
            options = (schema.Conv2DOptions() if name == "CONV_2D" else schema.DepthwiseConv2DOptions())
            options.Init(table.Bytes, table.Pos)
            kh, kw = [int(v) for v in graph.Tensors(inputs[1]).ShapeAsNumpy()[1:3]]
            same = options.Padding() == schema.Padding.SAME or kh == kw == 1
            if options.StrideH() != 1 or options.StrideW() != 1 or not same:
                raise NotTileableError(f"op {name} (#{index}) is not stride-1 SAME")
            dh, dw = options.DilationHFactor(), options.DilationWFactor()
            extent = max(dh * (kh - 1) - dh * (kh - 1) // 2, dw * (kw - 1) - dw * (kw - 1) // 2)
        else:
            raise _not_tileable(name, f"#{index}", _TFL_GLOBAL)
        reach = extent + max([radius.get(i, 0) for i in inputs], default=0)
        for o in op.OutputsAsNumpy():
            radius[int(o)] = reach
    return max(radius.get(int(o), 0) for o in graph.OutputsAsNumpy())
