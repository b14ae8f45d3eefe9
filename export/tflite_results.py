"""What the TFLite checks record (export/tflite_checks.py), and the results file that holds it.

`VariantResult` is one variant's record; `write_results` writes the whole report to
`<out_dir>/tflite_results.json` as strict JSON (non-finite floats as strings, `json_safe`), and
`read_results` reads it back (the model pusher and the run report do).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

RESULTS_FILE = "tflite_results.json"


@dataclass
class VariantResult:
    """What tflite_results.json records per variant (None: not measured, see `reason`)."""

    variant: str
    passed: bool = False
    reason: str = ""
    file: str | None = None  # relative to the output folder; None when not shipped
    size_bytes: int | None = None
    min_parity_psnr: float | None = None
    parity_max_abs: float | None = None
    parity_psnr: float | None = None  # worst image; +inf when identical to the SavedModel
    psnr: float | None = None  # vs the DSLR targets, mean over paired images
    psnr_pooled: float | None = None  # vs the DSLR targets, MSE pooled over all paired images
    ssim: float | None = None
    ms_ssim: float | None = None
    latency_ms: float | None = None
    input_size: list[int] | None = None  # [H, W] of the latency measurement
    input_shape_signature: list[int] | None = None
    resize_checked: list[list[int]] = field(default_factory=list)
    fixed_size: list[int] | None = None  # [H, W] of a fixed-size input, tiled at that size
    receptive_field_radius: int | None = None  # None: not tileable (the graph says why, see tiling_note)
    tiled_vs_whole_psnr: float | None = None  # worst image, tiled vs the variant's whole-image run; +inf: equal
    tiling_check_tile: list[int] | None = None  # [H, W] of the tiles of that measurement
    tiles_exactly: bool | None = None  # tiled_vs_whole_psnr >= tflite_tile_checks.EXACT_PSNR
    tiling_note: str = ""
    gpu_compatible: bool | None = None  # export/tflite_gpu.py: analyzer + project checks
    gpu_issues: list[str] = field(default_factory=list)
    gpu_analyzer: str | None = None
    metadata: bool = False  # TFLite model metadata written into the file (export/tflite_metadata.py)
    checked_images: int | None = None  # held-out images of parity and quality (fewer for a fixed-size model)
    # The phone input's quality on those images when they are a subset (a fixed-size model): what
    # the quality gate compares with, and what the report shows beside the variant's own.
    phone_input: dict[str, Any] | None = None


def write_results(out_dir: str, report: dict[str, Any]) -> str:
    """Write `<out_dir>/tflite_results.json`; infinite PSNR (identical outputs) is written "inf".

    Strict JSON has no Infinity; Python readers get the number back with float(value).
    """
    tf.io.gfile.makedirs(out_dir)
    path = os.path.join(out_dir, RESULTS_FILE)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(json_safe(report), indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path


def read_results(out_dir: str) -> dict[str, Any]:
    """The results file written by `export_variants` / `write_results`."""
    with tf.io.gfile.GFile(os.path.join(out_dir, RESULTS_FILE)) as f:
        return json.load(f)


def json_safe(value: Any) -> Any:
    """Plain JSON values: non-finite floats become "inf" / "-inf" / "nan", numpy scalars Python ones."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value
