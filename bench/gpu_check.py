"""One GPU check: DPED and WESPE training speed in float32, mixed_bfloat16 and XLA, against the device's peak.

    python bench/gpu_check.py [--out gpu_check.json] [--vgg-weights FILE] [--budget-s 420]
    python bench/gpu_check.py --dry-run      # no GPU: the same code on CPU, tiny sizes, seconds

For each model (DPED and WESPE with VGG-19 content: the given weights, else random ones, which cost
the same) and each variant (train.precision, `+xla` = jit_compile) it builds the real model
(trainer.models.create_model), warms it up (the first call traces and, with XLA, compiles), times
`--steps` Keras train steps on a fixed in-memory batch (no input pipeline: bench/input_rate.py
measures that, and is run here too), and reports patches/s, achieved TFLOP/s (the step's counted
FLOPs, bench/train_bench.py step_gflop, / step time) and that as a share of the device's dense
peak for the variant's arithmetic (PEAKS: float32 runs as TF32 on tensor cores from Ampere on,
which TensorFlow enables by default). Then, for the fastest variant, it doubles the batch until
the device runs out of memory (or --max-batch, or the time budget) and reports the largest batch
that ran and its patches/s. Defaults (batch 50 of 100x100 patches, DPED's own) take about 5-7
minutes on an H100-class GPU, most of it XLA compilation.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import phone2dslr    # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from phone2dslr.config import TrainConfig  # noqa: E402
from phone2dslr.trainer import models  # noqa: E402

import input_rate  # noqa: E402
from train_bench import parse_variant, photo_like, step_gflop, variant_arg, vgg_weights_file  # noqa: E402
from phone2dslr.console import count_arg  # noqa: E402

# Dense (no structured sparsity) peak TFLOP/s from the vendors' datasheets, SXM/PCIe as named:
# (bf16/fp16 tensor, TF32 tensor = what float32 matmuls/convs run as on Ampere+ by default).
# Matched by substring of TensorFlow's device name, first match wins (order: specific first).
PEAKS: list[tuple[str, float, float]] = [
    ("H200", 989.4, 494.7),
    ("H100 PCIe", 756.0, 378.0),
    ("H100", 989.4, 494.7),
    ("GH200", 989.4, 494.7),
    ("A100", 312.0, 156.0),
    ("L40S", 362.1, 183.0),
    ("L4", 121.0, 60.0),
    ("A10", 125.0, 62.5),
    ("V100", 125.0, 15.7),  # fp16 tensor cores; no bf16 or TF32 (float32: 15.7 on CUDA cores)
    ("T4", 65.0, 8.1),
]


def device_peak(name: str) -> tuple[float, float] | None:
    """(half-precision tensor, float32-as-run) dense peak TFLOP/s for a device name, or None."""
    for key, half, single in PEAKS:
        if key.lower() in name.lower():
            return half, single
    return None


def time_variant(model_name: str, variant: str, batch: int, patch: int, filters: int, vgg: str,
                 steps: int, warmup: int) -> dict[str, Any]:
    """Build, warm up and time one model variant at `batch`; raises tf.errors.ResourceExhaustedError
    when it does not fit."""
    precision, jit = parse_variant(variant)
    data = {"phone": tf.constant(photo_like(batch, patch, 1)), "dslr": tf.constant(photo_like(batch, patch, 2))}
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    cfg = TrainConfig(model=model_name, content="vgg19", vgg_weights=vgg, filters=filters, batch_size=batch,
                      jit_compile=jit, precision=precision)
    model = models.create_model(cfg, patch_size=patch)
    model(data["phone"][:1])
    fn = model.make_train_function()
    it = iter(tf.data.Dataset.from_tensors(data).repeat())
    t = time.perf_counter()
    float(fn(it)["g_loss"])
    first = time.perf_counter() - t
    for _ in range(warmup):
        float(fn(it)["g_loss"])
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        float(fn(it)["g_loss"])  # reading the loss waits for the step to finish on the device
        times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    return {"model": model_name, "variant": variant, "precision": precision, "xla": jit, "batch": batch,
            "patch": patch, "first_call_s": first, "step_ms": 1e3 * step_s, "patches_per_s": batch / step_s,
            "_train_step": model.train_step}


def largest_batch(model_name: str, variant: str, start: int, args: argparse.Namespace, vgg: str,
                  deadline: float) -> dict[str, Any]:
    """Double the batch from `start` until out of memory, --max-batch or the deadline."""
    best, batch, stopped = None, start, "max-batch"
    while batch <= args.max_batch:
        if time.perf_counter() > deadline:
            stopped = "time budget"
            break
        try:
            best = time_variant(model_name, variant, batch, args.patch, args.filters, vgg, 3, 1)
        except tf.errors.ResourceExhaustedError:
            stopped = "out of memory"
            break
        batch *= 2
    out = {"model": model_name, "variant": variant, "stopped_by": stopped}
    if best:
        out.update(largest_batch=best["batch"], patches_per_s=best["patches_per_s"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the script runs")
    parser.add_argument("--models", nargs="+", default=["dped", "wespe"], choices=sorted(models.MODELS))
    parser.add_argument("--variants", nargs="+", type=variant_arg, default=None,
                        help="default: float32 float32+xla mixed_bfloat16 mixed_bfloat16+xla (dry run: no XLA)")
    parser.add_argument("--batch", type=count_arg(1), default=None, help="default 50 (dry run 2)")
    parser.add_argument("--patch", type=count_arg(1), default=None, help="default 100 (dry run 16)")
    parser.add_argument("--filters", type=count_arg(1), default=None, help="default 64 (dry run 4)")
    parser.add_argument("--steps", type=count_arg(1), default=None, help="timed steps per variant (default 10, dry 1)")
    parser.add_argument("--max-batch", type=count_arg(1), default=None, help="batch search cap (default 3200, dry 4)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop the batch search after this")
    parser.add_argument("--vgg-weights", default="", help="VGG-19 weights (default: random, same cost)")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    dry = args.dry_run
    defaults = dict(batch=(2, 50), patch=(16, 100), filters=(4, 64), steps=(1, 10), max_batch=(4, 3200))
    for key, (tiny, real) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, tiny if dry else real)
    args.variants = args.variants or (["float32", "mixed_bfloat16"] if dry else
                                      ["float32", "float32+xla", "mixed_bfloat16", "mixed_bfloat16+xla"])
    start = time.perf_counter()

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not dry:
        print("gpu_check: no GPU visible to TensorFlow; --dry-run runs the same code on CPU", file=sys.stderr)
        return 2
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU (dry run)"
    peak = device_peak(name) if gpus else None
    print(f"device: {name} x{max(1, len(gpus))}; TensorFlow {tf.__version__}; peak (dense TFLOP/s, "
          f"bf16 / float32-as-TF32): {'%g / %g' % peak if peak else 'unknown for this device'}", flush=True)
    print(f"input pipeline alone: {input_rate.measure(256 if dry else 4096, args.patch, args.batch, 5 if dry else 40):.0f} "
          f"pairs/s on {os.cpu_count()} CPUs", flush=True)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        vgg = args.vgg_weights or vgg_weights_file(tmp)
        for model_name in args.models:
            gflop = None
            for variant in args.variants:
                row = time_variant(model_name, variant, args.batch, args.patch, args.filters, vgg, args.steps,
                                   1 if dry else 3)
                if gflop is None:  # the same step in every variant; counted once, float32 graph
                    spec = {k: tf.TensorSpec([args.batch, args.patch, args.patch, 3], tf.float32)
                            for k in ("phone", "dslr")}
                    gflop, _ = step_gflop(row["_train_step"], spec)
                del row["_train_step"]
                row["step_gflop"] = gflop
                row["tflops"] = gflop / (row["step_ms"] / 1e3) / 1e3
                ref = None if peak is None else (peak[0] if row["precision"] != "float32" else peak[1])
                row["peak_tflops"], row["pct_of_peak"] = ref, (100 * row["tflops"] / ref if ref else None)
                rows.append(row)
                print(f"  {model_name:5} {variant:18} batch {row['batch']:4}: {row['step_ms']:8.1f} ms/step "
                      f"{row['patches_per_s']:9.1f} patches/s {row['tflops']:8.2f} TFLOP/s "
                      f"{'' if ref is None else '%5.1f%% of peak' % row['pct_of_peak']} "
                      f"(first call {row['first_call_s']:.1f} s)", flush=True)
        searches = []
        deadline = start + args.budget_s
        for model_name in args.models:
            fastest = max((r for r in rows if r["model"] == model_name), key=lambda r: r["patches_per_s"])
            searches.append(largest_batch(model_name, fastest["variant"], args.batch * 2, args, vgg, deadline))
            print(f"  {model_name}: largest batch {searches[-1].get('largest_batch', '-')} "
                  f"({fastest['variant']}, stopped by {searches[-1]['stopped_by']})", flush=True)
    for model_name in args.models:
        by = {r["variant"]: r for r in rows if r["model"] == model_name}
        if "float32" in by and "mixed_bfloat16" in by:
            print(f"{model_name}: mixed_bfloat16 / float32 = "
                  f"{by['mixed_bfloat16']['patches_per_s'] / by['float32']['patches_per_s']:.2f}x patches/s")
    print(f"done in {time.perf_counter() - start:.0f} s")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"device": name, "peak_tflops": peak, "rows": rows, "batch_search": searches}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
