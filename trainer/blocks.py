"""Building blocks shared by DPED and WESPE: residual block, Gaussian blur kernels, grayscale,
augmentation, and the receptive field of a model (used by the tiled full-resolution inference in
export/).

Everything here is a free function. Layers are Keras built-ins, except the optional instance
norm of `residual_block(norm="instance")` (trainer/instance_norm.py).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

# A 21x21 Gaussian of sigma 3 (pixels): the default blur (WESPE's colour discriminator input).
# DPED's recipes choose their own kernels: `dped_code_kernel` (official code) or
# `sampled_gaussian_kernel` (the paper's formula), see trainer/dped_recipes.py.
BLUR_SIZE = 21
BLUR_SIGMA = 3.0
NORMS = ("none", "batch", "instance")


def batch_norm(name: str, **kwargs) -> keras.layers.BatchNormalization:
    """keras BatchNormalization, synchronized across replicas when built under a strategy with
    more than one (MirroredStrategy over several GPUs): each replica then normalises with the
    statistics of the whole global batch, as the recipe's single-device batch would, instead of
    its own shard's. One replica keeps the plain (fused) layer. kwargs go to the layer."""
    synchronized = tf.distribute.get_strategy().num_replicas_in_sync > 1
    return keras.layers.BatchNormalization(name=name, synchronized=synchronized, **kwargs)


def _norm_layer(norm: str, name: str) -> keras.layers.Layer:
    if norm == "batch":
        return batch_norm(name)
    if norm == "instance":
        from phone2dslr.trainer.instance_norm import InstanceNormalization
        return InstanceNormalization(name=name)
    raise ValueError(f"normalization {norm!r} is not one of {', '.join(NORMS)}")


def residual_block(x: tf.Tensor, filters: int, kernel_size: int = 3, name: str = "res",
                   norm: str = "none", **conv_kwargs) -> tf.Tensor:
    """Two convolutions, each [-> normalization] -> ReLU, and an identity skip added after the
    second ReLU (aiff22/DPED models.py:13-17: c3 = relu(IN(conv(relu(IN(conv(c1)))))) + c1).

    norm: 'none' (JuheonYi/DPED-TensorFlow DPED.py:93-103, its BN commented out), 'batch' (the
    DPED paper's text) or 'instance' (the official code). conv_kwargs go to both Conv2D layers
    (initializers). x: [B, H, W, filters] -> same shape.
    """
    y = x
    for i in (1, 2):
        y = keras.layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_conv{i}", **conv_kwargs)(y)
        if norm != "none":
            y = _norm_layer(norm, f"{name}_norm{i}")(y)
        y = keras.layers.ReLU(name=f"{name}_relu{i}")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def gaussian_kernel(size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Normalised 2-D Gaussian of standard deviation `sigma` pixels, each tap the integral of the
    density over its pixel; float32 [size, size], sums to 1. The default blur (used by WESPE)."""
    cdf = [0.5 * (1.0 + math.erf((i - size / 2.0) / (sigma * math.sqrt(2.0)))) for i in range(size + 1)]
    k1 = np.diff(np.asarray(cdf, dtype=np.float64))
    k2 = np.outer(k1, k1)
    return (k2 / k2.sum()).astype(np.float32)


def dped_code_kernel(kernlen: int = 21, nsig: float = 3.0) -> np.ndarray:
    """The official DPED blur kernel, utils.gauss_kernel (aiff22/DPED utils.py:20-29), float32
    [kernlen, kernlen] summing to 1.

    The standard normal CDF is sampled at kernlen + 1 points evenly spread over
    +-(nsig + interval / 2), interval = (2 nsig + 1) / kernlen; its differences are the 1-D taps;
    the 2-D kernel is the SQUARE ROOT of their outer product, normalised. One pixel is
    (2 nsig + interval) / kernlen standard units, so the 1-D taps have a standard deviation of
    3.32 px for (21, 3) and the square root widens it by sqrt(2): 4.69 px untruncated, 4.34 px
    as truncated to 21 taps (`kernel_std`). Not a Gaussian of sigma 3 px.
    """
    interval = (2.0 * nsig + 1.0) / kernlen
    x = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, kernlen + 1)
    cdf = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    raw = np.sqrt(np.outer(np.diff(cdf), np.diff(cdf)))
    return (raw / raw.sum()).astype(np.float32)


def sampled_gaussian_kernel(size: int = 21, sigma: float = 3.0) -> np.ndarray:
    """exp(-(k^2 + l^2) / (2 sigma^2)) at the integer offsets k, l in [-size//2, size//2],
    normalised to sum 1; float32 [size, size]. `sigma` is a standard deviation in pixels (the DPED
    paper's colour-loss kernel G(k, l), see trainer/dped_recipes.py for how its sigma is read)."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sigma ** 2))
    return (g / g.sum()).astype(np.float32)


def printed_gaussian_kernel(size: int = 21, amplitude: float = 0.053, sigma: float = 3.0) -> np.ndarray:
    """WESPE Sec. 3.2 (DPED Sec. 3.1.1): G(k, l) = A exp(-(k - mu)^2 / (2 sigma) - (l - mu)^2 / (2 sigma)).

    A = 0.053, mu = 0, sigma = 3 as printed; sigma sits where a variance goes (A = 1 / (2 pi 3)
    normalises exactly that Gaussian), so the taps are used as written, not renormalised (they sum
    to 0.999). The paper gives no size: 21 x 21 (DPED's utils.gauss_kernel default) holds it all
    (the edge tap is A e^-16.7). Returns float32 [size, size], centred (k, l = -size//2 .. size//2).
    """
    k = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = amplitude * np.exp(-(k[:, None] ** 2) / (2 * sigma) - (k[None, :] ** 2) / (2 * sigma))
    return taps.astype(np.float32)


def kernel_std(kernel: np.ndarray) -> float:
    """Standard deviation, in pixels, of a normalised 2-D kernel's row marginal (its blur width)."""
    marginal = np.asarray(kernel, np.float64).sum(axis=1)
    r = np.arange(marginal.size) - (marginal.size - 1) / 2.0
    return float(np.sqrt((marginal * r ** 2).sum() / marginal.sum()))


def gaussian_blur(images: tf.Tensor, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA,
                  kernel: np.ndarray | None = None) -> tf.Tensor:
    """Blur each channel of [B, H, W, C] images with a fixed (never trained) kernel.

    kernel: [k, k] taps; None: `gaussian_kernel(size, sigma)`. Depthwise convolution with zero
    'SAME' padding, as DPED does (utils.py:32-34); borders darken slightly, equally for both
    images a loss compares.
    """
    channels = images.shape[-1]
    if channels is None:
        raise ValueError("gaussian_blur needs a static channel count")
    taps = gaussian_kernel(size, sigma) if kernel is None else np.asarray(kernel, np.float32)
    taps = np.tile(taps[:, :, None, None], (1, 1, channels, 1))
    return tf.nn.depthwise_conv2d(images, tf.constant(taps, dtype=images.dtype), strides=[1, 1, 1, 1],
                                  padding="SAME")


def rgb_to_gray(images: tf.Tensor) -> tf.Tensor:
    """ITU-R BT.601 luma of [B, H, W, 3] images -> [B, H, W, 1] (tf.image.rgb_to_grayscale)."""
    return tf.image.rgb_to_grayscale(images)


def random_dihedral(*images: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """Apply one random flip / 90-degree rotation per example, the same to every tensor given.

    The tensors must share [B, H, W]; pass phone and DSLR together so a pair stays aligned.
    Left-right flip, up-down flip and transpose together give all 8 symmetries of the square;
    transposition (hence rotation) is applied only when H == W, so non-square batches keep their shape.
    """
    channels = [int(x.shape[-1]) for x in images]
    x = tf.concat(images, axis=-1)
    batch = tf.shape(x)[0]

    def coin() -> tf.Tensor:
        return tf.random.uniform([batch, 1, 1, 1]) < 0.5

    x = tf.where(coin(), tf.reverse(x, axis=[2]), x)
    x = tf.where(coin(), tf.reverse(x, axis=[1]), x)
    h, w = x.shape[1], x.shape[2]
    if h is not None and w is not None:
        if h == w:
            x = tf.where(coin(), tf.transpose(x, [0, 2, 1, 3]), x)
    else:
        flip = coin()
        x = tf.cond(tf.shape(x)[1] == tf.shape(x)[2],
                    lambda: tf.where(flip, tf.transpose(x, [0, 2, 1, 3]), x), lambda: x)
    return tuple(tf.split(x, channels, axis=-1))


# ---------------------------------------------------------------------------------------------
# Receptive field, walked over the model's layer graph.

_POINTWISE = {
    "InputLayer", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU", "Softmax",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
    "BatchNormalization", "LayerNormalization", "UnitNormalization", "Dropout", "SpatialDropout2D",
    "GaussianNoise", "GaussianDropout", "Rescaling", "Normalization", "Dense", "ZeroPadding2D",
    "Cropping2D", "Identity",
}
# InstanceNormalization: its statistics come from the whole image (export/tiling.py fixes them first).
_GLOBAL = {"Flatten", "Reshape", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Permute",
           "InstanceNormalization"}


def channel_axis_only(layer: keras.layers.Layer) -> bool:
    """Whether a layer of _POINTWISE works along the channel axis alone (its `axis`, if it has one,
    is -1 or 3 of [B, H, W, C]): a Softmax, LayerNormalization or Concatenate over H or W mixes
    positions (or changes the size) and is not pointwise."""
    axis = getattr(layer, "axis", -1)
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    return all(a in (-1, 3) for a in axes)


def _axes(axis: object) -> object:
    """A layer's axis as printed: Keras wraps list attributes in a ListWrapper."""
    return list(axis) if hasattr(axis, "__iter__") else axis


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[-1]))


def _kernel_and_stride(layer: keras.layers.Layer) -> tuple[int, int]:
    """Effective (kernel, stride) of one layer along the spatial axes (must be square)."""
    name = type(layer).__name__
    if name in ("Conv2DTranspose", "UpSampling2D"):
        raise ValueError(f"receptive_field: layer {layer.name} ({name}) upsamples; not supported")
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides"):  # Conv2D, DepthwiseConv2D, ...
        k, s, d = _pair(layer.kernel_size), _pair(layer.strides), _pair(layer.dilation_rate)
        k = tuple(di * (ki - 1) + 1 for ki, di in zip(k, d))
    elif hasattr(layer, "pool_size"):  # MaxPooling2D, AveragePooling2D
        k, s = _pair(layer.pool_size), _pair(layer.strides)
    elif name in _POINTWISE:
        if not channel_axis_only(layer):
            raise ValueError(f"receptive_field: layer {layer.name} ({name}) works over axis {_axes(layer.axis)}, "
                             "which mixes positions; the model has no finite receptive field")
        return 1, 1
    elif name in _GLOBAL:
        raise ValueError(f"receptive_field: layer {layer.name} ({name}) mixes all positions; "
                         "the model has no finite receptive field")
    else:
        raise ValueError(f"receptive_field: layer {layer.name} ({name}) has unknown spatial extent")
    if k[0] != k[1] or s[0] != s[1]:
        raise ValueError(f"receptive_field: layer {layer.name} is not square ({k}, stride {s})")
    return k[0], s[0]


def _field_and_jump(model: keras.Model) -> tuple[int, int]:
    memo: dict[int, tuple[int, int]] = {}

    def visit(tensor) -> tuple[int, int]:
        if id(tensor) in memo:
            return memo[id(tensor)]
        layer, node_index, _ = tensor._keras_history
        if isinstance(layer, keras.layers.InputLayer):
            result = (1, 1)
        else:
            parents = [visit(t) for t in tf.nest.flatten(layer._inbound_nodes[node_index].keras_inputs)]
            rf, jump = max(p[0] for p in parents), max(p[1] for p in parents)
            if isinstance(layer, keras.Model):
                k, s = _field_and_jump(layer)
            else:
                k, s = _kernel_and_stride(layer)
            result = (rf + (k - 1) * jump, jump * s)
        memo[id(tensor)] = result
        return result

    results = [visit(t) for t in tf.nest.flatten(model.outputs)]
    return max(r[0] for r in results), max(r[1] for r in results)


def receptive_field(model: keras.Model) -> int:
    """Side, in input pixels, of the square region that one output pixel of a functional model sees.

    Walks the layer graph from the outputs: each convolution or pooling adds (kernel - 1) * jump,
    where jump is the product of the strides before it (dilation widens the kernel); skip
    connections take the larger field; nested functional models are walked recursively. Layers
    that mix all positions (Flatten, global pooling) or are unknown raise ValueError.
    """
    return _field_and_jump(model)[0]


def output_stride(model: keras.Model) -> int:
    """Product of the strides from input to output (1 for the generators)."""
    return _field_and_jump(model)[1]
