"""TFLite conversion: the exported generator's `enhance_image` signature into four TFLite variants.

The phone app needs a small, fast model, but every conversion step (float16 weights, int8
quantization, the TFLite kernels themselves) can change what the model outputs. So each variant is
converted from the SavedModel's `enhance_image` signature (the one the app contract describes:
float32 [1, H, W, 3] in [0, 1], any H and W), and `SavedModelEnhancer` runs that same signature
as the reference every variant is measured against (tflite_checks.py); tflite_runtime.py runs the
converted files on LiteRT.

Conversion uses `TFLiteConverter.from_saved_model` (from_concrete_functions over a closure lost the
weights here). Nothing here knows about TFX; components/tflite_export wraps it.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import tensorflow as tf

from phone2dslr.trainer.serving import IMAGE_SIGNATURE, OUTPUT_KEY

VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
INPUT_KEY = "image"  # the `enhance_image` signature's input name


class TFLiteExportError(RuntimeError):
    """A SavedModel or TFLite model that cannot be used as asked; the message says why."""


def convert(saved_model_dir: str, variant: str,
            representative_images: Iterable[np.ndarray] | None = None) -> bytes:
    """Convert the SavedModel's `enhance_image` signature into one TFLite variant (flatbuffer bytes).

    - float32: no optimization; the reference the others are compared with.
    - float16: float16 weights (half the file); kernels still compute in float32 on CPU.
    - dynamic_int8: int8 weights, activations quantized on the fly (no calibration data needed).
    - int8: full integer kernels calibrated on `representative_images` (float32 [1, h, w, 3] in
      [0, 1]). Input and output stay float32: the app contract is float [0, 1] for every variant,
      so the app code does not change with the variant; the converter adds one quantize op at the
      input and one dequantize op at the output, negligible next to the convolutions.

    Raises ValueError for an unknown variant, TFLiteExportError for int8 without (or with
    misshaped) representative images, and whatever the converter raises for a model it rejects.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; choose from {', '.join(VARIANTS)}")
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


__all__ = ["VARIANTS", "INPUT_KEY", "TFLiteExportError", "convert", "SavedModelEnhancer"]
