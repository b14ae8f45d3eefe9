"""Building blocks shared by DPED and WESPE: residual block, Gaussian blur, grayscale, augmentation,
and the receptive field of a model (used by the tiled full-resolution inference in export/).

Everything here is a free function. Layers are Keras built-ins only, so a generator made of these
blocks saves and loads without custom objects.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

# DPED blurs with a 21x21 Gaussian of sigma 3 before comparing colours.
BLUR_SIZE = 21
BLUR_SIGMA = 3.0


def residual_block(x: tf.Tensor, filters: int, kernel_size: int = 3, name: str = "res") -> tf.Tensor:
    """Two convolutions with ReLU and an identity skip (DPED's block without its normalisation)."""
    y = keras.layers.Conv2D(filters, kernel_size, padding="same", activation="relu", name=f"{name}_conv1")(x)
    y = keras.layers.Conv2D(filters, kernel_size, padding="same", activation="relu", name=f"{name}_conv2")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def gaussian_kernel(size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Normalised 2-D Gaussian, each tap the integral of the density over its pixel (as DPED's kernel)."""
    cdf = [0.5 * (1.0 + math.erf((i - size / 2.0) / (sigma * math.sqrt(2.0)))) for i in range(size + 1)]
    k1 = np.diff(np.asarray(cdf, dtype=np.float64))
    k2 = np.outer(k1, k1)
    return (k2 / k2.sum()).astype(np.float32)


def gaussian_blur(images: tf.Tensor, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> tf.Tensor:
    """Blur each channel of [B, H, W, C] images with a fixed (never trained) Gaussian.

    Depthwise convolution with zero 'SAME' padding, as DPED does; borders darken slightly, equally
    for both images a loss compares.
    """
    channels = images.shape[-1]
    if channels is None:
        raise ValueError("gaussian_blur needs a static channel count")
    kernel = np.tile(gaussian_kernel(size, sigma)[:, :, None, None], (1, 1, channels, 1))
    kernel = tf.constant(kernel, dtype=images.dtype)
    return tf.nn.depthwise_conv2d(images, kernel, strides=[1, 1, 1, 1], padding="SAME")


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
_GLOBAL = {"Flatten", "Reshape", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Permute"}


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
