"""TFLite variants of the exported generator, each checked before it may ship.

The phone app needs a small, fast model, but every conversion step (float16 weights, int8
quantization, the TFLite kernels themselves) can change what the model outputs. So each variant is
converted from the SavedModel's `enhance_image` signature (the one the app contract describes:
float32 [1, H, W, 3] in [0, 1], any H and W) and then measured against that SavedModel:

- parity: the variant's output vs the SavedModel's output on held-out phone images (max abs
  difference, PSNR); below the configured bound the variant is failed and not shipped;
- quality: PSNR/SSIM of the variant's output vs the DSLR targets, with the trainer's metric code,
  so the numbers compare with training and evaluation;
- resizing: the input must take two different sizes (phones shoot many resolutions);
- latency: median milliseconds per image with LiteRT on this CPU at a stated size.

Conversion uses `TFLiteConverter.from_saved_model` (from_concrete_functions over a closure lost the
weights here) and inference uses LiteRT's Interpreter (tf.lite.Interpreter is deprecated).
Nothing here knows about TFX; components/tflite_export wraps it.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from phone2dslr.trainer.serving import IMAGE_SIGNATURE, OUTPUT_KEY

from phone2dslr.trainer.metrics import psnr as _psnr, ssim as _ssim  # one definition: training, TFMA, export

VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
INPUT_KEY = "image"
RESULTS_FILE = "tflite_results.json"
# Two different input sizes every variant must accept (multiples of 8, in case a generator
# downsamples); small, so the check costs milliseconds.
RESIZE_CHECK_SIZES: tuple[tuple[int, int], ...] = ((48, 64), (72, 40))
# tf.image.ssim uses an 11x11 Gaussian window; smaller images have no SSIM.
_SSIM_MIN_SIDE = 11


class TFLiteExportError(RuntimeError):
    """A SavedModel or TFLite model that cannot be used as asked; the message says why."""


def convert(saved_model_dir: str, variant: str,
            representative_images: Iterable[np.ndarray] | None = None) -> bytes:
    """Convert the SavedModel's `enhance_image` signature into one TFLite variant.

    - float32: no optimization; the reference the others are compared with.
    - float16: float16 weights (half the file); kernels still compute in float32 on CPU.
    - dynamic_int8: int8 weights, activations quantized on the fly (no calibration data needed).
    - int8: full integer kernels calibrated on `representative_images` (float32 [1, h, w, 3] in
      [0, 1]). Input and output stay float32: the app contract is float [0, 1] for every variant,
      so the app code does not change with the variant; the converter adds one quantize op at the
      input and one dequantize op at the output, negligible next to the convolutions.
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


class TFLiteRunner:
    """One LiteRT interpreter for repeated calls (tiles, benchmarks); resizes only on a new size.

    Building an interpreter (and its XNNPACK weight packing) costs far more than one small call,
    so code that runs many images or tiles keeps one of these.
    """

    def __init__(self, model: str | bytes, threads: int = 2) -> None:
        content = model if isinstance(model, (bytes, bytearray)) else _read_bytes(model)
        self.interpreter = Interpreter(model_content=bytes(content), num_threads=threads)
        self._input, self._output = _io_indices(self.interpreter)
        self._hw: tuple[int, int] | None = None

    @property
    def input_details(self) -> dict[str, Any]:
        return next(d for d in self.interpreter.get_input_details() if d["index"] == self._input)

    def resize(self, height: int, width: int) -> None:
        """Resize the input to [1, height, width, 3] and allocate (no-op when already that size)."""
        if self._hw == (height, width):
            return
        self.interpreter.resize_tensor_input(self._input, [1, height, width, 3], strict=True)
        self.interpreter.allocate_tensors()
        self._hw = (height, width)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """float32 [1, H, W, 3] or [H, W, 3] in [0, 1] -> float32 [1, H, W, 3]."""
        x = np.asarray(image, np.float32)
        if x.ndim == 3:
            x = x[np.newaxis]
        if x.ndim != 4 or x.shape[0] != 1 or x.shape[-1] != 3:
            raise ValueError(f"expected an image [1, H, W, 3] or [H, W, 3], got {list(x.shape)}")
        self.resize(int(x.shape[1]), int(x.shape[2]))
        details = self.input_details
        if details["dtype"] != np.float32:  # a model with integer I/O: quantize as it expects
            scale, zero = details["quantization"]
            info = np.iinfo(details["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(details["dtype"])
        self.interpreter.set_tensor(self._input, np.ascontiguousarray(x))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._output)
        out = next(d for d in self.interpreter.get_output_details() if d["index"] == self._output)
        if y.dtype != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y


def run_tflite(path: str | bytes, image: np.ndarray, threads: int = 2) -> np.ndarray:
    """Enhance one image with a TFLite model (path or bytes), resizing its input to the image.

    One-shot convenience; keep a `TFLiteRunner` when running many images or tiles.
    """
    return TFLiteRunner(path, threads=threads)(image)


def check_resizable(model: str | bytes, sizes: Sequence[tuple[int, int]] = RESIZE_CHECK_SIZES,
                    threads: int = 2) -> None:
    """Raise TFLiteExportError unless the model runs at every size and returns that size.

    A converter can silently fix the input shape (e.g. from a Keras model built on patches); the
    app then crashes or rescales on the first real photo, so this is checked before shipping.
    """
    runner = TFLiteRunner(model, threads=threads)
    signature = [int(v) for v in runner.input_details["shape_signature"]]
    for h, w in sizes:
        try:
            y = runner(np.full([1, h, w, 3], 0.5, np.float32))
        except (RuntimeError, ValueError) as e:
            raise TFLiteExportError(f"input (shape signature {signature}) cannot be resized to "
                                    f"[1, {h}, {w}, 3]: {' '.join(str(e).split())}") from None
        if list(y.shape) != [1, h, w, 3]:
            raise TFLiteExportError(f"input [1, {h}, {w}, 3] gave output {list(y.shape)}")


def measure_latency(model: str | bytes, height: int, width: int, threads: int = 2,
                    runs: int = 5, warmup: int = 1) -> float:
    """Median milliseconds of one `invoke` at [1, height, width, 3] (after warm-up runs).

    The median, not the mean: on a shared CPU one descheduled run would dominate a mean.
    """
    runner = TFLiteRunner(model, threads=threads)
    x = np.random.default_rng(0).random([1, height, width, 3], dtype=np.float32)
    runner(x)  # resizes, allocates and sets the input; later runs time `invoke` alone
    for _ in range(max(0, warmup - 1)):
        runner.interpreter.invoke()
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        runner.interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


class SavedModelEnhancer:
    """The SavedModel's `enhance_image` signature as a numpy function: the parity reference."""

    def __init__(self, saved_model_dir: str) -> None:
        loaded = tf.saved_model.load(saved_model_dir)
        if IMAGE_SIGNATURE not in loaded.signatures:
            raise TFLiteExportError(f"SavedModel {saved_model_dir} has no {IMAGE_SIGNATURE!r} signature "
                                    f"(has: {', '.join(sorted(loaded.signatures)) or 'none'})")
        self._loaded = loaded  # keep the variables alive
        self._fn = loaded.signatures[IMAGE_SIGNATURE]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        x = np.asarray(image, np.float32)
        if x.ndim == 3:
            x = x[np.newaxis]
        return self._fn(**{INPUT_KEY: tf.constant(x)})[OUTPUT_KEY].numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR (dB, max value 1.0) with the trainer's metric code; +inf for identical images."""
    return float(np.mean(_psnr(tf.constant(a, tf.float32), tf.constant(b, tf.float32)).numpy()))


def ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean SSIM (max value 1.0) with the trainer's metric code; None below the 11x11 window."""
    if min(a.shape[-3], a.shape[-2]) < _SSIM_MIN_SIDE:
        return None
    return float(np.mean(_ssim(tf.constant(a, tf.float32), tf.constant(b, tf.float32)).numpy()))


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
    ssim: float | None = None
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
    content = model if isinstance(model, (bytes, bytearray)) else _read_bytes(model)
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
    scores: list[tuple[float, float | None]] = []
    for image, reference in zip(images, enhancer_outputs, strict=True):
        out = runner(image.phone)
        if not np.all(np.isfinite(out)):
            finite = False
            break
        max_abs = max(max_abs, float(np.max(np.abs(out - reference))))
        worst = min(worst, psnr(out, reference))
        if image.dslr is not None:
            scores.append((psnr(out, image.dslr), ssim(out, image.dslr)))
    if not finite:
        result.reason = "output contains NaN or Inf (weights lost in conversion?)"
        return result
    if images:
        result.parity_max_abs, result.parity_psnr = max_abs, worst
    if scores:
        result.psnr = float(np.mean([p for p, _ in scores]))
        ssims = [s for _, s in scores if s is not None]
        result.ssim = float(np.mean(ssims)) if ssims else None
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
    `min_psnr_gain` / `min_ssim_gain` set, a variant whose PSNR/SSIM against the DSLR targets
    is not at least the phone input's plus that margin fails, whatever its parity.

    Layout: `<out_dir>/<variant>.tflite` for variants that passed (so everything at the top level
    is shippable), `<out_dir>/rejected/<variant>.tflite` for converted variants that failed (kept
    for debugging), and `<out_dir>/tflite_results.json`. A variant that fails to convert is
    recorded as failed with the converter's message instead of stopping the others.
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
    reference_quality: dict[str, Any] = {"saved_model": _quality([r for r, _ in paired], [d for _, d in paired])}
    reference_quality["phone_input"] = _quality([i.phone for i in images if i.dslr is not None],
                                                [d for _, d in paired])

    tf.io.gfile.makedirs(out_dir)
    results: dict[str, VariantResult] = {}
    for variant in variants:
        try:
            content = convert(saved_model_dir, variant, representative if variant == "int8" else None)
        except Exception as e:  # noqa: BLE001  (one variant's converter error must not stop the rest)
            results[variant] = VariantResult(variant=variant, min_parity_psnr=float(min_parity_psnr[variant]),
                                             reason=f"conversion failed: {_one_line(e)}")
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


def _quality(outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> dict[str, float | None]:
    if not outputs:
        return {"psnr": None, "ssim": None}
    ssims = [s for s in (ssim(o, t) for o, t in zip(outputs, targets)) if s is not None]
    return {"psnr": float(np.mean([psnr(o, t) for o, t in zip(outputs, targets)])),
            "ssim": float(np.mean(ssims)) if ssims else None}


def _io_indices(interpreter: Interpreter) -> tuple[int, int]:
    """Tensor indices of the image input and enhanced output, by signature names when present."""
    signatures = interpreter.get_signature_list()
    key = IMAGE_SIGNATURE if IMAGE_SIGNATURE in signatures else (
        next(iter(signatures)) if len(signatures) == 1 else None)
    if key is not None:
        runner = interpreter.get_signature_runner(key)
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        if len(inputs) == 1 and len(outputs) == 1:
            return next(iter(inputs.values()))["index"], next(iter(outputs.values()))["index"]
        if INPUT_KEY in inputs and OUTPUT_KEY in outputs:
            return inputs[INPUT_KEY]["index"], outputs[OUTPUT_KEY]["index"]
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise TFLiteExportError(f"expected one image input and one output (or an {IMAGE_SIGNATURE!r} "
                                f"signature), found {len(inputs)} inputs and {len(outputs)} outputs")
    return inputs[0]["index"], outputs[0]["index"]


def _read_bytes(path: str) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def _write_bytes(path: str, content: bytes) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(content)


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
    return f"{type(error).__name__}: {text}"[:500]


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


__all__ = [
    "VARIANTS", "RESULTS_FILE", "RESIZE_CHECK_SIZES", "TFLiteExportError", "TFLiteRunner",
    "EvalImage", "VariantResult", "SavedModelEnhancer", "convert", "run_tflite", "check_resizable",
    "measure_latency", "evaluate_variant", "export_variants", "write_results", "read_results", "json_safe", "psnr",
    "ssim",
]
