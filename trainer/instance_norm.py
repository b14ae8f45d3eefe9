"""Instance normalization as the official DPED code writes it (aiff22/DPED models.py:120-132).

    IN(x) = scale * (x - mean) / sqrt(var + 1e-3) + shift

mean and var per image and channel over H and W (tf.nn.moments(net, [1, 2]), models.py:125);
shift starts at 0 and scale at 1, both learned per channel (models.py:126-127). The official
generator normalizes its eight residual convolutions with it (models.py:14-41), the official
discriminator its conv2..conv5 after the LeakyReLU (models.py:105-117).

The layer is not a Keras built-in, so a SavedModel holding it is reloaded as Keras with
custom_objects={"InstanceNormalization": InstanceNormalization} (export/enhance.py does).
Its statistics cover the whole image, so export/stream_spec.py streams such models stage by
stage (export/tiling.py falls back to passes), using `fixed_stats` to freeze a normalization at
the statistics accumulated over the whole image (and `normalize(x, mean, var)` in the stage
signatures of a streamable `.tflite`, export/tflite_stages.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

EPSILON = 1e-3  # models.py:129


class InstanceNormalization(keras.layers.Layer):
    """DPED's instance norm over [B, H, W, C] float tensors: per image and channel over H and W,
    (x - mean) / sqrt(var + eps) * scale + shift (aiff22/DPED models.py:120-132). Same shape out."""

    def __init__(self, epsilon: float = EPSILON, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape: Any) -> None:
        channels = int(input_shape[-1])
        # Created shift first, then scale, as models.py:126-127 (the checkpoint import relies on it).
        # autocast=False: read in float32 under a mixed policy too, as the statistics below.
        self.shift = self.add_weight(name="shift", shape=[channels], initializer="zeros", autocast=False)
        self.scale = self.add_weight(name="scale", shape=[channels], initializer="ones", autocast=False)
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        # Statistics in float32 under a mixed policy: bfloat16's 8-bit mantissa would round a mean
        # over H x W pixels (as Keras' own normalization layers do, trainer/precision.py).
        x32 = tf.cast(x, tf.float32)
        mean, var = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
        return tf.cast(self.normalize(x32, mean, var), x.dtype)

    def normalize(self, x: tf.Tensor, mean: tf.Tensor, var: tf.Tensor) -> tf.Tensor:
        """x [B, H, W, C] float32 normalized with given statistics (mean, var broadcastable to x, e.g.
        [C] for whole-image statistics a streamed run completed: export/tflite_stages.py)."""
        return (x - mean) / tf.sqrt(var + self.epsilon) * self.scale + self.shift

    def fixed_stats(self, mean: np.ndarray, var: np.ndarray) -> keras.layers.Layer:
        """This normalization with given statistics: a pointwise per-channel affine (export/tiling.py)."""
        gain = self.scale.numpy().astype(np.float64) / np.sqrt(np.asarray(var, np.float64) + self.epsilon)
        offset = self.shift.numpy().astype(np.float64) - np.asarray(mean, np.float64) * gain
        return keras.layers.Rescaling(gain.astype(np.float32), offset=offset.astype(np.float32),
                                      name=f"{self.name}_fixed")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}
