"""TFLiteExport executor: held-out images from Examples, then export/tflite_checks.py does the work.

The executor only adapts TFX artifacts to export.tflite_checks: it finds the SavedModel in the Model
artifact, honours the Evaluator's blessing, decodes the phone/DSLR images of two splits, and puts
the results on the output artifact as files and custom properties (read by the Pusher and the run
report without opening files).
"""
from __future__ import annotations

import json
import os
from typing import Any

import phone2dslr    # noqa: F401  (Keras/TF environment first)
import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from phone2dslr.components import split_images
from phone2dslr.export import tflite_checks
from phone2dslr.export.tflite_convert import DEFAULT_FIXED_TILE, VARIANTS, TFLiteExportError

# Input / output keys and parameter names (component.py declares the same ones).
MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
EXAMPLES_KEY = "examples"
TFLITE_MODELS_KEY = "tflite_models"

DEFAULTS: dict[str, Any] = {
    "variants": list(VARIANTS),
    "min_parity_psnr": {"float32": 45.0, "float16": 40.0, "dynamic_int8": 30.0, "int8": 28.0, "fixed": 40.0},
    "representative_samples": 16,
    "eval_split": "test",
    "representative_split": "train",
    "max_eval_images": 8,
    "max_eval_side": 512,
    "latency_height": 100,
    "latency_width": 100,
    "latency_runs": 5,
    "threads": 2,
    "min_psnr_gain": "",  # "" = no quality gate; else a float, as the Evaluator's EvalConfig
    "min_ssim_gain": "",
    "fixed_tile": DEFAULT_FIXED_TILE,  # input side of the `fixed` variant
    "author": "",  # metadata of every shipped file; "" = tflite_checks.METADATA_DEFAULTS
    "license": "",
}


class Executor(base_executor.BaseExecutor):
    """Converts the Model's `enhance_image` signature into checked TFLite variants."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        params = parse_parameters(exec_properties)
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        output = artifact_utils.get_single_instance(output_dict[TFLITE_MODELS_KEY])
        blessings = input_dict.get(MODEL_BLESSING_KEY) or []
        blessed: bool | None = None
        if blessings:
            blessing = artifact_utils.get_single_instance(blessings)
            blessed = blessing.get_int_custom_property("blessed") == 1
            output.set_int_custom_property("model_blessed", int(blessed))
            if not blessed:
                logging.warning("TFLiteExport: model %s is not blessed; nothing converted", model.uri)
                tflite_checks.write_results(output.uri, {
                    "model_blessed": False, "shipped": [], "variants": {},
                    "reason": f"model not blessed by the Evaluator (blessing {blessing.uri}); nothing converted",
                })
                output.set_string_custom_property("shipped_variants", "")
                output.set_int_custom_property("num_shipped", 0)
                return

        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        eval_images, eval_skipped = read_split_images(
            examples, params["eval_split"], params["max_eval_images"], params["max_eval_side"])
        if not eval_images:
            raise TFLiteExportError(
                f"split {params['eval_split']!r} of {examples.uri} has no usable phone image to check parity on "
                f"(set aside: {json.dumps(eval_skipped)})")
        representative: list[np.ndarray] = []
        rep_skipped: dict[str, int] = {}
        if "int8" in params["variants"]:
            rep, rep_skipped = read_split_images(
                examples, params["representative_split"], params["representative_samples"], params["max_eval_side"])
            representative = [image.phone for image in rep]

        report = tflite_checks.export_variants(
            path_utils.serving_model_path(model.uri),
            output.uri,
            eval_images,
            representative,
            params["min_parity_psnr"],
            variants=params["variants"],
            latency_size=(params["latency_height"], params["latency_width"]),
            threads=params["threads"],
            latency_runs=params["latency_runs"],
            min_psnr_gain=params["min_psnr_gain"],
            min_ssim_gain=params["min_ssim_gain"],
            fixed_tile=params["fixed_tile"],
            metadata={"version": f"model artifact {model.id}" if model.id else os.path.basename(model.uri),
                      "author": params["author"], "license": params["license"]},
            extra={
                "model_blessed": blessed,
                "eval_split": params["eval_split"],
                "representative_split": params["representative_split"],
                "set_aside": {"eval": eval_skipped, "representative": rep_skipped},
            },
        )
        set_output_properties(output, report)
        logging.info("TFLiteExport: shipped %s; results in %s", report["shipped"],
                     os.path.join(output.uri, tflite_checks.RESULTS_FILE))


def parse_parameters(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """Exec properties (JSON strings for the list and the dict) -> typed values with defaults.

    List and dict parameters travel as JSON strings: that survives every orchestrator (local
    MLMD, Kubeflow V2 runtime parameters) unchanged.
    """
    params = dict(DEFAULTS)
    for key, value in exec_properties.items():
        if key in params and value is not None and value != "":
            params[key] = value
    variants = params["variants"]
    if isinstance(variants, str):
        text = variants.strip()
        variants = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
    bounds = params["min_parity_psnr"]
    if isinstance(bounds, str):
        bounds = json.loads(bounds)
    params["variants"] = [str(v) for v in variants]
    params["min_parity_psnr"] = {str(k): float(v) for k, v in bounds.items()}
    unknown = [v for v in params["variants"] if v not in VARIANTS]
    if unknown:
        raise ValueError(f"TFLiteExport variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    missing = [v for v in params["variants"] if v not in params["min_parity_psnr"]]
    if missing:
        raise ValueError(f"TFLiteExport min_parity_psnr: no bound for {', '.join(missing)}")
    for key in ("min_psnr_gain", "min_ssim_gain"):
        params[key] = None if params[key] in ("", None) else float(params[key])
    for key in ("representative_samples", "max_eval_images", "max_eval_side", "latency_height",
                "latency_width", "latency_runs", "threads", "fixed_tile"):
        params[key] = int(params[key])
    if params["fixed_tile"] < 1:
        raise ValueError(f"TFLiteExport fixed_tile must be a positive number of pixels, got {params['fixed_tile']}")
    for key in ("author", "license"):
        params[key] = str(params[key] or "")
    return params


def read_split_images(examples: types.Artifact, split: str, limit: int,
                      max_side: int = 0) -> tuple[list[tflite_checks.EvalImage], dict[str, int]]:
    """`limit` examples with a decodable phone image, spread over the split (seeded), and what was set aside.

    Reads `<examples.uri>/Split-<split>/*.gz` (GZIP TFRecords of tf.Examples whose `phone` and
    `dslr` features hold encoded images, b"" when missing). A DSLR target of another size than its
    phone image is not a pixel-aligned pair, so the example is kept for parity only. Images larger
    than `max_side` are centre-cropped (same crop for both): the generator is fully convolutional,
    and full-resolution photos would make each variant's check take minutes on a CPU.
    """
    names = artifact_utils.decode_split_names(examples.split_names)
    if split not in names:
        raise TFLiteExportError(f"Examples {examples.uri} have no split {split!r} (have: {', '.join(names)})")
    split_dir = artifact_utils.get_split_uri([examples], split)
    if not tf.io.gfile.glob(os.path.join(split_dir, "*.gz")):
        raise TFLiteExportError(f"no GZIP TFRecord files (*.gz) in {split_dir}")
    samples, skipped = split_images.read_samples(split_dir, limit)
    images = []
    for sample in samples:
        phone = _center_crop(sample.phone, max_side)
        dslr = None if sample.dslr is None else _center_crop(sample.dslr, max_side)[np.newaxis]
        images.append(tflite_checks.EvalImage(phone[np.newaxis], dslr))
    return images, skipped


def set_output_properties(output: types.Artifact, report: dict[str, Any]) -> None:
    """Summary numbers on the artifact itself, so the Pusher and the report need no file reads.

    shipped_variants: comma-separated names of the variants that passed ("" when none);
    num_shipped; and psnr / psnr_pooled / ssim / ms_ssim / latency_ms of the float32 variant when
    it was measured.
    """
    output.set_string_custom_property("shipped_variants", ",".join(report["shipped"]))
    output.set_int_custom_property("num_shipped", len(report["shipped"]))
    float32 = report["variants"].get("float32", {})
    for key in (*tflite_checks.QUALITY_KEYS, "latency_ms"):
        value = float32.get(key)
        if isinstance(value, (int, float)) and np.isfinite(value):
            output.set_float_custom_property(key, float(value))


def _center_crop(image: np.ndarray, max_side: int) -> np.ndarray:
    if max_side <= 0:
        return image
    h, w = image.shape[:2]
    top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    return image[top:top + min(h, max_side), left:left + min(w, max_side)]
