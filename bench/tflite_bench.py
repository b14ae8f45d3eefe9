"""TFLite variants of the DPED generator side by side: latency and output drift vs Keras float32.

    python bench/tflite_bench.py [--sizes 100x100 768x1024] [--runs 3] [--threads 2] [--out results.json]

One run builds the DPED generator (trainer.dped.build_generator: 9x9 conv 64, 4 residual blocks of
3x3x64, two 3x3x64 convs, 9x9 conv to 3, 1x1 head) with random weights, saves it with the
project's exporter, converts the four variants exactly as the pipeline does (export/tflite_convert.py), and
measures each on the same photo-like input at each size, beside the Keras model itself:

- latency: median ms per image (LiteRT `invoke` with N threads; Keras: one eager `model(x)` call,
  TensorFlow limited to the same N intra-op threads);
- drift: PSNR (dB) of each output against the Keras float32 output, both clipped to [0, 1] as the
  serving signature does. With random weights this measures conversion error only, not quality;
  the 1x1 head is rescaled so outputs span the image range like a photo (see `spread_output`).

Sizes are HxW; 768x1024 is a 1024x768 landscape photo. A few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

import phone2dslr    # noqa: F401  (Keras/TF environment first)
import numpy as np
import tensorflow as tf
import tf_keras as keras

from phone2dslr.export import tflite_checks, tflite_convert, tflite_runtime
from phone2dslr.trainer.serving import export_image_generator
from phone2dslr.trainer.dped import build_generator


def photo_like(height: int, width: int, seed: int) -> np.ndarray:
    """Low-frequency colour image [1, H, W, 3] in [0, 1] (random noise would flatter int8 less)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random([1, max(2, height // 16), max(2, width // 16), 3]).astype(np.float32)
    return np.clip(tf.image.resize(coarse, [height, width], method="bicubic").numpy(), 0.0, 1.0)


def spread_output(generator: keras.Model, x: np.ndarray) -> None:
    """Rescale the linear 1x1 head so the output has mean 0.5 and std 0.25 per channel on `x`.

    Random weights give outputs in a narrow band around 0 (about [-0.14, 0.23]), and a narrow
    band makes every PSNR look better than on a real photo; only the last linear layer changes.
    """
    head = generator.get_layer("enhanced")
    y = generator(x, training=False).numpy().reshape(-1, 3)
    scale = 0.25 / np.maximum(y.std(axis=0), 1e-6)
    kernel, bias = head.get_weights()
    head.set_weights([kernel * scale, (bias - y.mean(axis=0)) * scale + 0.5])


def runs_for(size: tuple[int, int], runs: int) -> int:
    """Small inputs take milliseconds: time them 5x as often, so one hiccup cannot move the median."""
    return runs * 5 if size[0] * size[1] <= 256 * 256 else runs


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def run(sizes: Sequence[tuple[int, int]], runs: int = 3, threads: int = 2, seed: int = 0,
        representative: int = 8) -> dict[str, Any]:
    """All measurements as plain data: {"sizes", "rows": [{name, size_bytes, per-size ms / dB}]}.

    Timing is interleaved: each round calls every model once, in turn, so a busy neighbour on a
    shared CPU slows all columns alike instead of whichever model happened to be running.
    """
    keras.utils.set_random_seed(seed)
    generator = build_generator(filters=64, head="conv1x1")
    spread_output(generator, photo_like(100, 100, seed=seed + 50))
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "serving")
        export_image_generator(generator, saved)
        calibration = [photo_like(100, 100, seed=100 + i) for i in range(representative)]
        # The fixed-size variant runs only at its own size (enhance tiles photos at it): not comparable here.
        models = {f"tflite {v}": tflite_convert.convert(saved, v, calibration if v == "int8" else None)
                  for v in tflite_convert.VARIANTS if v != "fixed"}
    runners = {name: tflite_runtime.TFLiteRunner(content, threads=threads) for name, content in models.items()}
    rows: dict[str, dict[str, Any]] = {"keras float32": {"name": "keras float32", "size_bytes": None}}
    rows.update({name: {"name": name, "size_bytes": len(content)} for name, content in models.items()})

    for size in sizes:
        key = f"{size[0]}x{size[1]}"
        x = photo_like(*size, seed=seed + 1)
        reference = np.clip(generator(x, training=False).numpy(), 0.0, 1.0)  # also Keras's warm-up
        calls: dict[str, Callable[[], Any]] = {"keras float32": lambda: generator(x, training=False).numpy()}
        drift: dict[str, float | None] = {"keras float32": None}
        for name, runner in runners.items():
            drift[name] = tflite_checks.psnr(runner(x), reference)  # resizes, sets the input, warms up
            calls[name] = runner.interpreter.invoke
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(runs_for(size, runs)):
            for name, call in calls.items():
                times[name].append(_timed(call))
        for name in calls:
            rows[name][key] = {"latency_ms": float(statistics.median(times[name])), "psnr_vs_keras": drift[name]}
        print(f"  measured {key}", file=sys.stderr, flush=True)
    return {"sizes": [list(s) for s in sizes], "threads": threads, "runs": runs,
            "generator": "phone2dslr.trainer.dped.build_generator(filters=64, head='conv1x1'), random weights, head rescaled",
            "rows": list(rows.values())}


def table(results: dict[str, Any]) -> str:
    """A plain-text table: one row per model, latency and drift per size."""
    keys = [f"{h}x{w}" for h, w in results["sizes"]]
    header = f"{'model':<20}{'size':>10}" + "".join(f"{k + ' ms':>14}{'dB vs keras':>13}" for k in keys)
    lines = [header, "-" * len(header)]
    for row in results["rows"]:
        size = f"{row['size_bytes'] / 1024:.0f} KB" if row["size_bytes"] else "-"
        cells = ""
        for k in keys:
            ms, db = row[k]["latency_ms"], row[k]["psnr_vs_keras"]
            cells += f"{ms:>14.1f}{('-' if db is None else ('inf' if db == float('inf') else f'{db:.1f}')):>13}"
        lines.append(f"{row['name']:<20}{size:>10}{cells}")
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=_size, default=[(100, 100), (768, 1024)],
                        help="input sizes as HxW (default: 100x100 768x1024)")
    parser.add_argument("--runs", type=int, default=3,
                        help="timed runs per measurement (median); inputs up to 256x256 get 5x as many")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    # Keras gets the same number of threads as LiteRT, so the columns compare like with like.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    start, load = time.perf_counter(), os.getloadavg()
    results = run(args.sizes, runs=args.runs, threads=args.threads)
    print(table(results))
    print(f"\n{results['generator']}; LiteRT {args.threads} threads; median of {args.runs} runs; "
          f"(x5 up to 256x256); load average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}; "
          f"total {time.perf_counter() - start:.0f} s")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(tflite_checks.json_safe(results), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
