"""Before / after / DSLR samples for the report: held-out examples through the exported model.

The samples come from the split the Evaluator scored, and the model runs through the SavedModel's
`enhance_image` signature (the one the TFLite variants are converted from), so what the reader
sees is what the numbers above it measured. Large images are centre-cropped before enhancing
(the generators are fully convolutional), and small patches are upscaled by an integer factor
with nearest neighbour, so each pixel the model changed stays visible and nothing is smoothed.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from phone2dslr.components.run_report.page import Crop
from phone2dslr.components.split_images import Sample
from phone2dslr.trainer.serving import IMAGE_SIGNATURE, OUTPUT_KEY
from phone2dslr.trainer.metrics import ms_ssim, ms_ssim_scales, psnr


def center_crop(image: np.ndarray, side: int) -> np.ndarray:
    """At most side x side from the centre; smaller images are returned whole."""
    h, w = image.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[top:top + min(h, side), left:left + min(w, side)]


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (each pixel becomes a factor x factor block)."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


def to_png(image: np.ndarray, factor: int = 1) -> bytes:
    """float [H, W, 3] in [0, 1] -> PNG bytes, upscaled by `factor`."""
    pixels = np.clip(np.round(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return tf.io.encode_png(upscale(pixels, factor)).numpy()


class Enhancer:
    """The SavedModel's `enhance_image` signature as a numpy function on one [H, W, 3] image."""

    def __init__(self, saved_model_dir: str) -> None:
        self._loaded = tf.saved_model.load(saved_model_dir)  # keeps the variables alive
        if IMAGE_SIGNATURE not in self._loaded.signatures:
            raise ValueError(f"SavedModel {saved_model_dir} has no {IMAGE_SIGNATURE!r} signature "
                             f"(has: {', '.join(sorted(self._loaded.signatures)) or 'none'})")
        self._fn = self._loaded.signatures[IMAGE_SIGNATURE]
        (self._input,) = self._fn.structured_input_signature[1]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        out = self._fn(**{self._input: tf.constant(image[np.newaxis], tf.float32)})[OUTPUT_KEY]
        return out.numpy()[0]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(psnr(a[np.newaxis], b[np.newaxis]).numpy()[0])


def _ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM of two [H, W, 3] images with the trainer's scales; None under 11 px on a side."""
    if ms_ssim_scales(*a.shape[:2]) == 0:
        return None
    return float(ms_ssim(a[np.newaxis], b[np.newaxis]).numpy()[0])


def make_crops(enhancer: Enhancer, samples: list[Sample], crop_size: int, display_side: int = 256) -> list[Crop]:
    """Centre crops of each sample, enhanced, scored (PSNR, MS-SSIM) against the DSLR crop, as PNGs."""
    crops = []
    for sample in samples:
        phone = center_crop(sample.phone, crop_size)
        dslr = None if sample.dslr is None else center_crop(sample.dslr, crop_size)
        enhanced = enhancer(phone)
        h, w = phone.shape[:2]
        factor = max(1, display_side // max(h, w))
        crops.append(Crop(
            label=f"source {sample.source or '?'}, example {sample.index}",
            phone_png=to_png(phone, factor), enhanced_png=to_png(enhanced, factor),
            dslr_png=None if dslr is None else to_png(dslr, factor), size=(h, w), scale=factor,
            psnr_phone=None if dslr is None else _psnr(phone, dslr),
            psnr_model=None if dslr is None else _psnr(enhanced, dslr),
            ms_ssim_phone=None if dslr is None else _ms_ssim(phone, dslr),
            ms_ssim_model=None if dslr is None else _ms_ssim(enhanced, dslr)))
    return crops
