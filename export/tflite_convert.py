"""TFLite conversion: the exported generator's `enhance_image` signature into five TFLite variants.

The phone app needs a small, fast model, but every conversion step (float16 weights, int8
quantization, the TFLite kernels themselves) can change what the model outputs. So each variant is
converted from the SavedModel's `enhance_image` signature (the one the app contract describes:
float32 [1, H, W, 3] in [0, 1], any H and W), and `SavedModelEnhancer` runs that same signature
as the reference every variant is measured against (tflite_checks.py); tflite_runtime.py runs the
converted files on LiteRT.

Conversion uses `TFLiteConverter.from_saved_model` (from_concrete_functions over a closure lost the
weights here); the fixed-size variant is converted from a temporary SavedModel whose signature
wraps `enhance_image` at one input size. Nothing here knows about TFX; components/tflite_export
wraps it.
"""
from __future__ import annotations

from typing import Any, Iterable

import os
import tempfile

import numpy as np
import tensorflow as tf

# TFLiteExportError and INPUT_KEY live with the TensorFlow-free runtime; re-exported here.
from phone2dslr.export.tflite_runtime import INPUT_KEY, TFLiteExportError  # noqa: F401
from phone2dslr.trainer.serving import IMAGE_SIGNATURE, OUTPUT_KEY

VARIANTS = ("float32", "float16", "dynamic_int8", "int8", "fixed")
DEFAULT_FIXED_TILE = 512  # input side of the fixed variant (export.fixed_tile)


def convert(saved_model_dir: str, variant: str,
            representative_images: Iterable[np.ndarray] | None = None, fixed_tile: int = DEFAULT_FIXED_TILE) -> bytes:
    """Convert the SavedModel's `enhance_image` signature into one TFLite variant (flatbuffer bytes).

    - float32: no optimization; the reference the others are compared with. For a generator that
      normalizes over the image (instance norm) float32 and float16 are streamable: they add the
      stage signatures of export/tflite_stages.py, which `enhance` streams exactly.
    - float16: float16 weights (half the file); kernels still compute in float32 on CPU.
    - dynamic_int8: int8 weights, activations quantized on the fly (no calibration data needed).
    - int8: full integer kernels calibrated on `representative_images` (float32 [1, h, w, 3] in
      [0, 1]). Input and output stay float32: the app contract is float [0, 1] for every variant,
      so the app code does not change with the variant; the converter adds one quantize op at the
      input and one dequantize op at the output, negligible next to the convolutions.
    - fixed: float16 weights (as float16) at a fixed input [1, fixed_tile, fixed_tile, 3], what the
      GPU delegate and NNAPI need; apps (and `enhance`) tile photos at that size.

    Raises ValueError for an unknown variant or a fixed_tile below 1, TFLiteExportError for int8
    without (or with misshaped) representative images, and whatever the converter raises for a
    model it rejects.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if variant == "fixed":
        if fixed_tile < 1:
            raise ValueError(f"fixed_tile must be a positive number of pixels, got {fixed_tile}")
        with tempfile.TemporaryDirectory() as tmp:
            return convert(_fixed_size_saved_model(saved_model_dir, fixed_tile, os.path.join(tmp, "fixed")),
                           "float16")
    streamable = _normalized_keras(saved_model_dir) if variant in ("float32", "float16") else None
    if streamable is not None:  # + stage signatures and plan: enhance streams it exactly, in bounded memory
        from phone2dslr.export import tflite_stages

        return tflite_stages.convert_streamable(streamable, variant)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[IMAGE_SIGNATURE])
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        samples = [np.asarray(x, np.float32) for x in (representative_images or [])]
        if not samples:
            raise TFLiteExportError("int8 needs representative images for calibration; none were given")
        for x in samples:
            if x.ndim != 4 or x.shape[0] != 1 or x.shape[-1] != 3:
                raise TFLiteExportError(f"representative images must be [1, h, w, 3], got {list(x.shape)}")
        converter.representative_dataset = lambda: ([x] for x in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # inference_input_type / inference_output_type stay float32 on purpose (see above).
    return converter.convert()


def _normalized_keras(saved_model_dir: str) -> Any:
    """The Keras generator of a SavedModel that normalizes over the image (instance norm) and can be
    streamed (export/stream_plan.py), else None. Only a Keras SavedModel naming InstanceNormalization
    in its keras_metadata.pb is loaded: the others are left to the plain conversion at no cost."""
    metadata = os.path.join(saved_model_dir, "keras_metadata.pb")
    if not tf.io.gfile.exists(metadata):
        return None
    with tf.io.gfile.GFile(metadata, "rb") as f:
        if b'"InstanceNormalization"' not in f.read():
            return None
    import tf_keras as keras

    from phone2dslr.export import stream_plan
    from phone2dslr.export.tiles import NotTileableError
    from phone2dslr.trainer.instance_norm import InstanceNormalization

    try:
        model = keras.models.load_model(saved_model_dir, compile=False,
                                        custom_objects={"InstanceNormalization": InstanceNormalization})
        stream_plan.plan(model)
    except (ValueError, TypeError, KeyError, OSError, NotTileableError):
        return None  # not a Keras generator the stage plan can cut: whole-image TFLite
    return model


def _fixed_size_saved_model(saved_model_dir: str, tile: int, out_dir: str) -> str:
    """A SavedModel at `out_dir` whose `enhance_image` signature is the original at [1, tile, tile, 3].

    The converter takes the input shape from the signature, so the fixed size is set there; the
    module keeps the loaded model as an attribute so its variables are saved with it.
    """
    loaded = tf.saved_model.load(saved_model_dir)
    if IMAGE_SIGNATURE not in loaded.signatures:
        raise TFLiteExportError(f"SavedModel {saved_model_dir} has no {IMAGE_SIGNATURE!r} signature")
    signature = loaded.signatures[IMAGE_SIGNATURE]
    module = tf.Module()
    module.model = loaded

    @tf.function(input_signature=[tf.TensorSpec([1, tile, tile, 3], tf.float32, name=INPUT_KEY)])
    def enhance_image(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_KEY: signature(**{INPUT_KEY: image})[OUTPUT_KEY]}

    module.enhance_image = enhance_image
    tf.saved_model.save(module, out_dir, signatures={IMAGE_SIGNATURE: enhance_image})
    return out_dir


class SavedModelEnhancer:
    """The SavedModel's `enhance_image` signature as a numpy function: the parity reference.

    Raises TFLiteExportError when the SavedModel has no such signature.
    """

    def __init__(self, saved_model_dir: str) -> None:
        loaded = tf.saved_model.load(saved_model_dir)
        if IMAGE_SIGNATURE not in loaded.signatures:
            raise TFLiteExportError(f"SavedModel {saved_model_dir} has no {IMAGE_SIGNATURE!r} signature "
                                    f"(has: {', '.join(sorted(loaded.signatures)) or 'none'})")
        self._loaded = loaded  # keep the variables alive
        self._fn = loaded.signatures[IMAGE_SIGNATURE]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """float32 [1, H, W, 3] or [H, W, 3] in [0, 1] -> float32 [1, H, W, 3] in [0, 1]."""
        x = np.asarray(image, np.float32)
        if x.ndim == 3:
            x = x[np.newaxis]
        return self._fn(**{INPUT_KEY: tf.constant(x)})[OUTPUT_KEY].numpy()


__all__ = ["VARIANTS", "DEFAULT_FIXED_TILE", "INPUT_KEY", "TFLiteExportError", "convert", "SavedModelEnhancer"]
