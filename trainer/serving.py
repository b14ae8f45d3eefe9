"""The exported SavedModel and its serving signatures.

- `serving_default`: serialized tf.Examples -> the enhanced phone image, and the same stacked with
  the phone input (what TFMA evaluates); it runs the Transform graph, so evaluation sees exactly
  the training-time decoding.
- `transform_features`: serialized tf.Examples -> transformed features (TFMA takes its labels,
  the DSLR image, and the phone input from here).
- `enhance_image`: float32 [1, H, W, 3] in [0, 1], any H and W -> enhanced image; the TFLite
  export converts this one.
- `enhance_bytes`: one encoded JPEG/PNG -> enhanced float image and PNG bytes, for servers.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer.preprocessing import PHONE, decode_image

OUTPUT_KEY = "enhanced"
STACKED_KEY = "enhanced_and_input"
IMAGE_SIGNATURE = "enhance_image"
BYTES_SIGNATURE = "enhance_bytes"
TRANSFORM_SIGNATURE = "transform_features"


def _signatures(generator: keras.Model, tft_layer: Any, raw_feature_spec: dict[str, Any]) -> dict[str, Any]:
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(serialized, raw_feature_spec)
        phone = tft_layer(raw)[PHONE]
        enhanced = tf.clip_by_value(generator(phone, training=False), 0.0, 1.0)
        # The stacked output lets TFMA metrics compare the model with its own input (trainer/metrics.py).
        return {OUTPUT_KEY: enhanced, STACKED_KEY: tf.concat([enhanced, phone], axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return tft_layer(tf.io.parse_example(serialized, raw_feature_spec))

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="image")])
    def enhance_image(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_KEY: tf.clip_by_value(generator(image, training=False), 0.0, 1.0)}

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="image_bytes")])
    def enhance_bytes(data: tf.Tensor) -> dict[str, tf.Tensor]:
        image = decode_image(data)[tf.newaxis]
        out = tf.clip_by_value(generator(image, training=False), 0.0, 1.0)
        png = tf.io.encode_png(tf.image.convert_image_dtype(out[0], tf.uint8, saturate=True))
        return {OUTPUT_KEY: out, "png": png}

    return {
        "serving_default": serve_examples,
        TRANSFORM_SIGNATURE: transform_features,
        IMAGE_SIGNATURE: enhance_image,
        BYTES_SIGNATURE: enhance_bytes,
    }


def export_generator(generator: keras.Model, export_dir: str, tft_layer: Any,
                     raw_feature_spec: dict[str, Any]) -> None:
    """Save the generator alone (no discriminators, no VGG) with the four signatures."""
    generator.tft_layer = tft_layer  # tracked, so the Transform graph's assets are saved too
    generator.save(export_dir, save_format="tf",
                   signatures=_signatures(generator, tft_layer, raw_feature_spec))


def export_image_generator(generator: keras.Model, export_dir: str) -> None:
    """Save a generator that has no Transform graph (e.g. imported weights) with the image signatures.

    `enhance_image` (also `serving_default`) and `enhance_bytes`, defined as in `_signatures`; the
    tf.Example signatures need a Transform graph and are left out.
    """
    signatures = _signatures(generator, None, {})
    signatures = {key: signatures[key] for key in (IMAGE_SIGNATURE, BYTES_SIGNATURE)}
    generator.save(export_dir, save_format="tf",
                   signatures={"serving_default": signatures[IMAGE_SIGNATURE], **signatures})
