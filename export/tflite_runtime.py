"""Running TFLite models on LiteRT: one reusable runner, the resize check, and latency.

Inference uses LiteRT's Interpreter (ai_edge_litert; tf.lite.Interpreter is deprecated). Models
come as a path or as the bytes `tflite_convert.convert` returns; images are float32 [1, H, W, 3]
in [0, 1], the app contract, whatever the variant's kernels compute in.

No TensorFlow here (it is imported only to read a remote path such as gs://): `phone2dslr enhance`
with a .tflite file runs on the minimal runtime install (README, "Enhance on LiteRT alone").
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from phone2dslr.console import native_log_threshold

# The SavedModel's image signature and its keys (trainer/serving.py defines them; repeated here
# because importing that module loads TensorFlow; a test keeps the two equal).
IMAGE_SIGNATURE = "enhance_image"
INPUT_KEY = "image"
OUTPUT_KEY = "enhanced"


class TFLiteExportError(RuntimeError):
    """A SavedModel or TFLite model that cannot be used as asked; the message says why."""

# Two different input sizes every variant must accept (multiples of 8, in case a generator
# downsamples); small, so the check costs milliseconds.
RESIZE_CHECK_SIZES: tuple[tuple[int, int], ...] = ((48, 64), (72, 40))


class TFLiteRunner:
    """One LiteRT interpreter for repeated calls (tiles, benchmarks); resizes only on a new size.

    Building an interpreter (and its XNNPACK weight packing) costs far more than one small call,
    so code that runs many images or tiles keeps one of these. Raises TFLiteExportError for a
    model without one image input and one output (or an `enhance_image` signature).
    """

    def __init__(self, model: str | bytes, threads: int = 2, any_size: bool = False) -> None:
        """`any_size`: resize even a fixed-size input (LiteRT's strict=False; works on the CPU for a
        fully convolutional graph): only to measure such a model against its own whole-image output."""
        content = model if isinstance(model, (bytes, bytearray)) else read_bytes(model)
        # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" (INFO) here: held to TF_CPP_MIN_LOG_LEVEL.
        with native_log_threshold():
            self.interpreter = Interpreter(model_content=bytes(content), num_threads=threads)
        self._input, self._output = _io_indices(self.interpreter)
        self._hw: tuple[int, int] | None = None
        self._any_size = any_size

    @property
    def input_details(self) -> dict[str, Any]:
        return next(d for d in self.interpreter.get_input_details() if d["index"] == self._input)

    @property
    def output_details(self) -> dict[str, Any]:
        return next(d for d in self.interpreter.get_output_details() if d["index"] == self._output)

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(height, width) of a model whose input size is fixed (no -1 in the shape signature of its
        [1, H, W, C] input: what the GPU delegate and NNAPI need); None when it takes any size."""
        signature = [int(v) for v in self.input_details["shape_signature"]]
        if len(signature) != 4 or -1 in signature[1:3]:
            return None
        return signature[1], signature[2]

    def resize(self, height: int, width: int) -> None:
        """Resize the input to [1, height, width, 3] and allocate (no-op when already that size).

        Raises RuntimeError or ValueError (LiteRT's) for a size a fixed-size input does not have."""
        if self._hw == (height, width):
            return
        if self.fixed_size != (height, width):  # a fixed input of its own size needs no resize
            self.interpreter.resize_tensor_input(self._input, [1, height, width, 3], strict=not self._any_size)
        with native_log_threshold():  # the delegate is applied (and logged) at allocation
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
        if y.dtype != np.float32:
            scale, zero = self.output_details["quantization"]
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


def read_bytes(path: str) -> bytes:
    """The bytes of a local or remote file, e.g. a .tflite model. A remote path (gs://, s3://, ...)
    is read with tf.io.gfile, which imports TensorFlow; a local one with plain Python."""
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


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


__all__ = ["RESIZE_CHECK_SIZES", "IMAGE_SIGNATURE", "INPUT_KEY", "OUTPUT_KEY", "TFLiteExportError", "TFLiteRunner",
           "run_tflite", "check_resizable", "measure_latency", "read_bytes"]
