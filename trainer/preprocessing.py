"""Decode and scale images once, in one definition shared by Transform, training and serving.

Transform's `preprocessing_fn` applies `decode_image` to the fixed-size patches of every split, so
the Trainer's input pipeline and the `serving_default` / `transform_features` signatures that TFMA
calls run the very same graph. Full-size serving inputs (any H, W) cannot go through a graph whose
output shape is fixed to the patch size, so the export signatures call the same `decode_image`
function directly: one definition of "image bytes -> float RGB in [0, 1]" everywhere.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from phone2dslr.features import DOMAIN, DSLR, PHONE, SOURCE

HAS_PHONE = "has_phone"
HAS_DSLR = "has_dslr"
IMAGE_KEYS = (PHONE, DSLR)


def decode_image(data: tf.Tensor, size: int | None = None) -> tf.Tensor:
    """Encoded JPEG/PNG bytes (scalar) -> float32 [H, W, 3] in [0, 1]; empty bytes -> zeros.

    Examples of unpaired data carry b"" for the missing side; a zero image plus a has_* flag keeps
    every batch dense so one graph serves paired and unpaired examples.
    """
    def _decode() -> tf.Tensor:
        image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
        return tf.image.convert_image_dtype(image, tf.float32)

    if size is None:
        return _decode()

    def _empty() -> tf.Tensor:
        return tf.zeros([size, size, 3], tf.float32)

    image = tf.cond(tf.strings.length(data) > 0, _decode, _empty)
    return tf.ensure_shape(tf.reshape(image, [size, size, 3]), [size, size, 3])


def _dense_strings(feature: Any) -> tf.Tensor:
    """Raw string features arrive as [B, 1] dense or as sparse; return [B]."""
    if isinstance(feature, tf.SparseTensor):
        feature = tf.sparse.to_dense(feature, default_value="")
    return tf.reshape(feature, [-1])


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, tf.Tensor]:
    """Transform entry: decoded float images, presence flags, and the slicing keys passed through."""
    size = int(custom_config["patch_size"])
    outputs: dict[str, tf.Tensor] = {}
    for key in IMAGE_KEYS:
        data = _dense_strings(inputs[key])
        outputs[key] = tf.map_fn(
            lambda d: decode_image(d, size), data,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        outputs[f"has_{key}"] = tf.cast(tf.strings.length(data) > 0, tf.int64)
    for key in (SOURCE, DOMAIN):
        outputs[key] = _dense_strings(inputs[key])
    return outputs
