"""The checks every TFLite variant passes before it may ship; export/tflite_results.py records them.

Each variant (tflite_convert.py) is run on LiteRT (tflite_runtime.py) and measured against the
SavedModel it came from:

- parity: the variant's output vs the SavedModel's output on held-out phone images (max abs
  difference, PSNR); below the configured bound the variant is failed and not shipped;
- quality: per-image PSNR, pooled PSNR, SSIM and MS-SSIM of the variant's output vs the DSLR
  targets, with the trainer's metric code (trainer/metrics.py), so the numbers compare with
  training and evaluation; optionally gated like the Evaluator (it must beat the phone input);
- resizing: the input must take two different sizes (phones shoot many resolutions), except for
  a fixed-size variant, which is run tiled at its size (as `enhance` and apps run it) and whose
  parity is measured against the SavedModel on the same windows (export/tflite_tile_checks.py);
- latency: median milliseconds per image with LiteRT on this CPU at a stated size (a fixed-size
  variant: at its size).

Recorded without gating: tiling (`tiled_vs_whole_psnr`, `tiles_exactly`: tiled vs whole-image
output of the variant itself), the GPU delegate verdict (export/tflite_gpu.py), and whether the
model metadata (export/tflite_metadata.py) was written into the file that ships.

Nothing here knows about TFX; components/tflite_export wraps it.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import tensorflow as tf

from phone2dslr.errors import one_line
from phone2dslr.export import tflite_metadata, tflite_tile_checks
from phone2dslr.export.image_quality import QUALITY_KEYS, ms_ssim, psnr, quality, ssim  # noqa: F401  (re-exported)
from phone2dslr.export.tflite_convert import (DEFAULT_FIXED_TILE, VARIANTS, SavedModelEnhancer, TFLiteExportError,
                                              convert)
from phone2dslr.export.tflite_gpu import gpu_verdict
from phone2dslr.export.tflite_graph import tflite_radius
from phone2dslr.export.tflite_results import (RESULTS_FILE, VariantResult, json_safe,  # noqa: F401  (re-exported)
                                              read_results, write_results)
from phone2dslr.export.tflite_runtime import (RESIZE_CHECK_SIZES, TFLiteRunner, check_resizable,
                                              measure_latency, read_bytes)
from phone2dslr.export.tiles import ImageFn, NotTileableError, tiled_apply
from phone2dslr.trainer.serving import IMAGE_SIGNATURE

# Metadata fields of every shipped file unless the config says otherwise (export.author, export.license).
METADATA_DEFAULTS = {"name": "phone2dslr photo enhancer", "version": "unversioned", "author": "phone2dslr",
                     "license": "unspecified"}


@dataclass
class EvalImage:
    """One held-out example: the phone input and, when the example is paired, its DSLR target."""

    phone: np.ndarray  # float32 [1, H, W, 3] in [0, 1]
    dslr: np.ndarray | None = None


def evaluate_variant(variant: str, model: str | bytes, enhancer_outputs: Sequence[np.ndarray],
                     images: Sequence[EvalImage], min_parity_psnr: float,
                     latency_size: tuple[int, int] = (100, 100), threads: int = 2,
                     latency_runs: int = 5, reference: ImageFn | None = None) -> VariantResult:
    """Resizing, parity, quality and latency of one TFLite model; `passed` only if all hold. Tiling
    and the GPU verdict are recorded too, not gated.

    `enhancer_outputs[i]` is the SavedModel's output for `images[i].phone` (computed once and
    shared by all variants). Parity is the worst image, because the bound is a promise for every
    photo, not for an average one. A fixed-size model is run tiled at its size; with `reference`
    (the SavedModel as a function) its parity is against the SavedModel on the same windows, else
    against `enhancer_outputs` (then it includes the mirrored padding of patches below its size).
    """
    content = model if isinstance(model, (bytes, bytearray)) else read_bytes(model)
    result = VariantResult(variant=variant, size_bytes=len(content), min_parity_psnr=float(min_parity_psnr))
    runner = TFLiteRunner(content, threads=threads)
    result.input_shape_signature = [int(v) for v in runner.input_details["shape_signature"]]
    for key, value in gpu_verdict(content, result.input_shape_signature).items():
        setattr(result, key, value)
    try:
        radius: int | None = tflite_radius(content)
    except NotTileableError as e:
        radius, result.tiling_note = None, f"not tileable: {e}"
    result.receptive_field_radius = radius
    fixed = runner.fixed_size
    run: ImageFn = runner
    references = list(enhancer_outputs)
    if fixed is None:
        try:
            check_resizable(content, threads=threads)
        except TFLiteExportError as e:
            result.reason = f"not resizable: {e}"
            return result
        result.resize_checked = [list(s) for s in RESIZE_CHECK_SIZES]
    else:
        result.fixed_size, latency_size = list(fixed), fixed
        if radius is None or min(fixed) <= 2 * radius:
            result.reason = (f"fixed input {fixed[0]}x{fixed[1]} cannot be tiled exactly: "
                             f"{result.tiling_note or f'its overlap {2 * (radius or 0)} px leaves no output'}")
            return result

        def run(image: np.ndarray) -> np.ndarray:  # tiled at its size, as `enhance` and an app run it
            return tiled_apply(runner, image, tile=fixed, radius=radius, fixed=True)

        images = images[:tflite_tile_checks.FIXED_CHECK_IMAGES]
        references = references[:len(images)]
        if reference is not None:
            references = tflite_tile_checks.fixed_references(reference, [i.phone for i in images], fixed, radius)
    result.checked_images = len(images)

    max_abs, worst, finite = 0.0, math.inf, True
    outputs: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    runs: list[np.ndarray] = []  # the variant's outputs: whole-image, or tiled at a fixed size
    for image, ref in zip(images, references, strict=True):
        out = run(image.phone)
        if not np.all(np.isfinite(out)):
            finite = False
            break
        runs.append(out)
        max_abs = max(max_abs, float(np.max(np.abs(out - ref))))
        worst = min(worst, psnr(out, ref))
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
    if images and radius is not None:
        _check_tiling(result, content, runner, [i.phone for i in images], runs, radius, fixed, threads)
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


def _check_tiling(result: VariantResult, content: bytes, runner: TFLiteRunner, phones: list[np.ndarray],
                  runs: list[np.ndarray], radius: int, fixed: tuple[int, int] | None, threads: int) -> None:
    """Tiled vs whole-image output of the variant itself. `runs`: its outputs of the parity check,
    whole-image ones, or for a fixed-size model tiled ones (its whole-image outputs are then computed
    at each image's own size: LiteRT resizes a fixed input on the CPU when asked to)."""
    tiled = None
    if fixed is not None:
        try:
            anywhere = TFLiteRunner(content, threads=threads, any_size=True)
            tiled, runs = runs, [anywhere(p) for p in phones]
        except (RuntimeError, ValueError) as e:
            result.tiling_note = f"not measured: the fixed-size model does not run at other sizes ({one_line(e)})"
            return
    value, tile = tflite_tile_checks.tiled_vs_whole(runner, phones, runs, radius, fixed, tiled)
    result.tiled_vs_whole_psnr, result.tiling_check_tile = value, tile
    result.tiles_exactly = tflite_tile_checks.tiles_exactly(value)
    result.tiling_note = (f"tiles of {tile[0]}x{tile[1]} overlapping by {2 * radius} px "
                          + ("equal the whole-image output up to float rounding" if result.tiles_exactly else
                             "differ from the whole-image output"))


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
    fixed_tile: int = DEFAULT_FIXED_TILE,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Convert, check and write every variant; returns what it writes to tflite_results.json.

    Every converted file gets the TFLite model metadata before its checks (so what was checked is
    what ships): `metadata` gives name, version, author and license (defaults: METADATA_DEFAULTS),
    export/tflite_metadata.py the rest. `fixed_tile`: the input side of the fixed variant.

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
    fields = {**METADATA_DEFAULTS, **{k: v for k, v in (metadata or {}).items() if v}}
    for variant in variants:
        try:
            content = convert(saved_model_dir, variant, representative if variant == "int8" else None,
                              fixed_tile=fixed_tile)
        except Exception as e:  # noqa: BLE001  (one variant's converter error must not stop the rest)
            results[variant] = VariantResult(variant=variant, min_parity_psnr=float(min_parity_psnr[variant]),
                                             reason=f"conversion failed: {one_line(e, error_line=True)}")
            continue
        content, written = tflite_metadata.with_metadata(content, variant, fields)
        result = evaluate_variant(variant, content, references, images, float(min_parity_psnr[variant]),
                                  latency_size=latency_size, threads=threads, latency_runs=latency_runs,
                                  reference=enhancer)
        result.metadata = written
        phone = reference_quality["phone_input"]
        if result.checked_images is not None and result.checked_images < len(images):
            subset = [i for i in images[:result.checked_images] if i.dslr is not None]
            phone = result.phone_input = quality([i.phone for i in subset], [i.dslr for i in subset])
        if result.passed:
            _apply_quality_gate(result, phone, min_psnr_gain, min_ssim_gain)
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
        "fixed_tile": fixed_tile if "fixed" in variants else None,
        "tiling_check": "tiled vs whole-image output of each variant itself, worst image (tiled_vs_whole_psnr); "
                        f"tiles_exactly when >= {tflite_tile_checks.EXACT_PSNR} dB",
        "gpu_check": "tf.lite.experimental.Analyzer (gpu_compatibility=True) + Flex ops and dynamic input shape",
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


def _write_bytes(path: str, content: bytes) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(content)


__all__ = [
    "RESULTS_FILE", "QUALITY_KEYS", "METADATA_DEFAULTS", "EvalImage", "VariantResult", "evaluate_variant",
    "export_variants", "write_results", "read_results", "json_safe", "quality", "psnr", "ssim", "ms_ssim",
]
