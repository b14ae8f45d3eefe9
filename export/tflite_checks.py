"""The checks every TFLite variant passes before it may ship, and the results file that records them.

Each variant (tflite_convert.py) is run on LiteRT (tflite_runtime.py) and measured against the
SavedModel it came from:

- parity: the variant's output vs the SavedModel's output on held-out phone images (max abs
  difference, PSNR); below the configured bound the variant is failed and not shipped;
- quality: per-image PSNR, pooled PSNR, SSIM and MS-SSIM of the variant's output vs the DSLR
  targets, with the trainer's metric code (trainer/metrics.py), so the numbers compare with
  training and evaluation; optionally gated like the Evaluator (it must beat the phone input);
- resizing: the input must take two different sizes (phones shoot many resolutions);
- latency: median milliseconds per image with LiteRT on this CPU at a stated size.

Nothing here knows about TFX; components/tflite_export wraps it.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import tensorflow as tf

from phone2dslr.errors import one_line
from phone2dslr.export.tflite_convert import VARIANTS, SavedModelEnhancer, TFLiteExportError, convert
from phone2dslr.export.tflite_runtime import (RESIZE_CHECK_SIZES, TFLiteRunner, check_resizable,
                                              measure_latency, read_bytes)
from phone2dslr.trainer import metrics  # one definition: training, TFMA, export
from phone2dslr.trainer.serving import IMAGE_SIGNATURE

RESULTS_FILE = "tflite_results.json"
QUALITY_KEYS = ("psnr", "psnr_pooled", "ssim", "ms_ssim")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-image PSNR (dB, max value 1.0) of [B, H, W, 3] images; +inf for identical images."""
    return float(np.mean(metrics.psnr(tf.constant(a, tf.float32), tf.constant(b, tf.float32)).numpy()))


def ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean SSIM (max value 1.0) of [B, H, W, 3] images; None below the 11x11 window."""
    if min(a.shape[-3], a.shape[-2]) < metrics.SSIM_FILTER_SIZE:
        return None
    return float(np.mean(metrics.ssim(tf.constant(a, tf.float32), tf.constant(b, tf.float32)).numpy()))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean MS-SSIM (scales as trainer/metrics.py) of [B, H, W, 3] images; None below 11 px."""
    if metrics.ms_ssim_scales(a.shape[-3], a.shape[-2]) == 0:
        return None
    return float(np.mean(metrics.ms_ssim(tf.constant(a, tf.float32), tf.constant(b, tf.float32)).numpy()))


def quality(outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> dict[str, float | None]:
    """Quality of images against their DSLR targets, each pair [1, H, W, 3] in [0, 1] (sizes may differ).

    psnr, ssim, ms_ssim: means over the images (SSIM / MS-SSIM over those of at least 11 px;
    None when there are none); psnr_pooled: PSNR of the MSE pooled over every value of every
    image, so larger images weigh more. All None without images.
    """
    if not outputs:
        return {key: None for key in QUALITY_KEYS}
    pooled = metrics.PooledPSNR()
    for output, target in zip(outputs, targets, strict=True):
        pooled.update_state(target, output)
    ssims = [s for s in (ssim(o, t) for o, t in zip(outputs, targets)) if s is not None]
    ms_ssims = [s for s in (ms_ssim(o, t) for o, t in zip(outputs, targets)) if s is not None]
    return {"psnr": float(np.mean([psnr(o, t) for o, t in zip(outputs, targets)])),
            "psnr_pooled": float(pooled.result().numpy()),
            "ssim": float(np.mean(ssims)) if ssims else None,
            "ms_ssim": float(np.mean(ms_ssims)) if ms_ssims else None}


@dataclass
class EvalImage:
    """One held-out example: the phone input and, when the example is paired, its DSLR target."""

    phone: np.ndarray  # float32 [1, H, W, 3] in [0, 1]
    dslr: np.ndarray | None = None


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


def evaluate_variant(variant: str, model: str | bytes, enhancer_outputs: Sequence[np.ndarray],
                     images: Sequence[EvalImage], min_parity_psnr: float,
                     latency_size: tuple[int, int] = (100, 100), threads: int = 2,
                     latency_runs: int = 5) -> VariantResult:
    """Resizing, parity, quality and latency of one TFLite model; `passed` only if all hold.

    `enhancer_outputs[i]` is the SavedModel's output for `images[i].phone` (computed once and
    shared by all variants). Parity is the worst image, because the bound is a promise for every
    photo, not for an average one.
    """
    content = model if isinstance(model, (bytes, bytearray)) else read_bytes(model)
    result = VariantResult(variant=variant, size_bytes=len(content), min_parity_psnr=float(min_parity_psnr))
    try:
        check_resizable(content, threads=threads)
    except TFLiteExportError as e:
        result.reason = f"not resizable: {e}"
        return result
    result.resize_checked = [list(s) for s in RESIZE_CHECK_SIZES]
    runner = TFLiteRunner(content, threads=threads)
    result.input_shape_signature = [int(v) for v in runner.input_details["shape_signature"]]

    max_abs, worst, finite = 0.0, math.inf, True
    outputs: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for image, reference in zip(images, enhancer_outputs, strict=True):
        out = runner(image.phone)
        if not np.all(np.isfinite(out)):
            finite = False
            break
        max_abs = max(max_abs, float(np.max(np.abs(out - reference))))
        worst = min(worst, psnr(out, reference))
        if image.dslr is not None:
            outputs.append(out)
            targets.append(image.dslr)
    if not finite:
        result.reason = "output contains NaN or Inf (weights lost in conversion?)"
        return result
    if images:
        result.parity_max_abs, result.parity_psnr = max_abs, worst
    for key, value in quality(outputs, targets).items():
        setattr(result, key, value)
    result.latency_ms = measure_latency(content, *latency_size, threads=threads, runs=latency_runs)
    result.input_size = list(latency_size)

    if not images:
        result.reason = "no held-out images to check parity on"
    elif not worst >= min_parity_psnr:  # also catches NaN
        result.reason = (f"parity PSNR {worst:.2f} dB vs the SavedModel is below the bound "
                         f"{min_parity_psnr:.2f} dB (max abs difference {max_abs:.4g})")
    else:
        result.passed = True
        result.reason = f"parity PSNR {worst:.2f} dB >= {min_parity_psnr:.2f} dB"
    return result


def export_variants(
    saved_model_dir: str,
    out_dir: str,
    images: Sequence[EvalImage],
    representative_images: Iterable[np.ndarray] | None,
    min_parity_psnr: dict[str, float],
    variants: Sequence[str] = VARIANTS,
    latency_size: tuple[int, int] = (100, 100),
    threads: int = 2,
    latency_runs: int = 5,
    extra: dict[str, Any] | None = None,
    min_psnr_gain: float | None = None,
    min_ssim_gain: float | None = None,
) -> dict[str, Any]:
    """Convert, check and write every variant; returns what it writes to tflite_results.json.

    The file that ships is what phones run, so it meets the Evaluator's absolute gate too: with
    `min_psnr_gain` / `min_ssim_gain` set, a variant whose (per-image mean) PSNR/SSIM against the
    DSLR targets is not at least the phone input's plus that margin fails, whatever its parity.

    Layout: `<out_dir>/<variant>.tflite` for variants that passed (so everything at the top level
    is shippable), `<out_dir>/rejected/<variant>.tflite` for converted variants that failed (kept
    for debugging), and `<out_dir>/tflite_results.json`. A variant that fails to convert is
    recorded as failed with the converter's message instead of stopping the others. Raises
    ValueError for an unknown variant or a variant without a parity bound.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown TFLite variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    missing = [v for v in variants if v not in min_parity_psnr]
    if missing:
        raise ValueError(f"min_parity_psnr has no bound for {', '.join(missing)}")
    representative = [np.asarray(x, np.float32) for x in (representative_images or [])]
    enhancer = SavedModelEnhancer(saved_model_dir)
    references = [enhancer(image.phone) for image in images]
    paired = [(ref, image.dslr) for ref, image in zip(references, images) if image.dslr is not None]
    reference_quality: dict[str, Any] = {"saved_model": quality([r for r, _ in paired], [d for _, d in paired])}
    reference_quality["phone_input"] = quality([i.phone for i in images if i.dslr is not None],
                                               [d for _, d in paired])

    tf.io.gfile.makedirs(out_dir)
    results: dict[str, VariantResult] = {}
    for variant in variants:
        try:
            content = convert(saved_model_dir, variant, representative if variant == "int8" else None)
        except Exception as e:  # noqa: BLE001  (one variant's converter error must not stop the rest)
            results[variant] = VariantResult(variant=variant, min_parity_psnr=float(min_parity_psnr[variant]),
                                             reason=f"conversion failed: {one_line(e, error_line=True)}")
            continue
        result = evaluate_variant(variant, content, references, images, float(min_parity_psnr[variant]),
                                  latency_size=latency_size, threads=threads, latency_runs=latency_runs)
        if result.passed:
            _apply_quality_gate(result, reference_quality["phone_input"], min_psnr_gain, min_ssim_gain)
        name = f"{variant}.tflite" if result.passed else f"rejected/{variant}.tflite"
        _write_bytes(os.path.join(out_dir, name), content)
        result.file = name if result.passed else None
        results[variant] = result

    report: dict[str, Any] = {
        "signature": IMAGE_SIGNATURE,
        "saved_model": saved_model_dir,
        "threads": threads,
        "metrics": "phone2dslr.trainer.metrics",
        "eval_images": len(images),
        "paired_eval_images": len(paired),
        "eval_sizes": sorted({(int(i.phone.shape[1]), int(i.phone.shape[2])) for i in images}),
        "representative_samples": len(representative),
        "reference": reference_quality,
        "variants": {v: asdict(r) for v, r in results.items()},
        "shipped": [v for v, r in results.items() if r.passed],
        **(extra or {}),
    }
    write_results(out_dir, report)
    return report


def _apply_quality_gate(result: VariantResult, phone: dict[str, Any], min_psnr_gain: float | None,
                        min_ssim_gain: float | None) -> None:
    """Fail a variant that does not improve on the phone input by the Evaluator's margins."""
    for name, margin in (("psnr", min_psnr_gain), ("ssim", min_ssim_gain)):
        if margin is None or phone.get(name) is None:
            continue
        value = getattr(result, name)
        if value is None or not value - phone[name] >= margin:
            result.passed = False
            result.reason = (f"{name.upper()} {value if value is None else round(value, 4)} vs the DSLR targets "
                             f"does not beat the phone input's {phone[name]:.4f} by the gate's {margin}")
            return


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


def _write_bytes(path: str, content: bytes) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(content)


__all__ = [
    "RESULTS_FILE", "QUALITY_KEYS", "EvalImage", "VariantResult", "evaluate_variant", "export_variants",
    "write_results", "read_results", "json_safe", "quality", "psnr", "ssim", "ms_ssim",
]
