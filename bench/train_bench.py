"""Training throughput of DPED and WESPE beside the FLOP floor and the input pipeline, in one run.

    python bench/train_bench.py [--models dped wespe] [--contents pixel vgg19] [--batch 8]
        [--patch 100] [--filters 64] [--steps 2] [--variants float32 float32+xla mixed_bfloat16]
        [--input-pairs 1024] [--out results.json]

For each model (trainer.models.create_model, the real TrainConfig path) and content network it
builds one copy per variant from the same seed (a variant is a train.precision, `+xla` adding
TrainConfig.jit_compile), warms them up (the first call traces, and compiles with XLA), then
times their Keras train functions (`model.make_train_function()`, what `fit` runs) alternately,
step by step, so all see the same machine load. Batches are fixed synthetic photo-like patches held in memory (no input pipeline
cost); augmentation is on, as in training. patches/s counts phone patches (a WESPE step also
reads as many DSLR patches; a DPED step reads the pairs' DSLR halves).

- content `pixel`: content loss on pixels, no pretrained network. `vgg19`: VGG-19 with RANDOM
  weights (saved to a temporary .h5 and loaded by trainer/vgg.py; nothing is downloaded); costs
  the same as the real one: DPED uses relu5_4, WESPE relu2_2.
- step GFLOP: TensorFlow's per-op flop statistics (the registry behind tf.compat.v1.profiler's
  float_operation) summed over one traced `train_step` with static shapes, over the nodes its
  outputs and variable updates depend on (see step_gflop: the raw graph holds unused gradient ops).
  Counted: convolutions forward and both backward kernels, matmuls and elementwise arithmetic;
  activations such as ReLU are not. A cross-check prints the count for one generator forward pass
  next to the analytic sum over its Conv2D layers (2 x k x k x c_in x c_out x H x W).
- conv rate: a 3x3, 64->64 conv2d on [batch, patch, patch, 64] (DPED's dominant layer; bigger with
  --conv-batch), in GFLOP/s (best of 5), measured before and after each model's timing rounds;
  the table shows both, the floor uses the run's peak (the machine with the least contention).
- floor: step GFLOP / peak conv rate, the step time if every FLOP ran at that convolution rate;
  `% floor` = floor / measured step time. `vs first` = the first variant's step time / this
  variant's (>1: faster than the first, float32 by default), from the same alternating rounds.
- mixed_bfloat16 pays on CPUs with bfloat16 units (AVX-512 BF16, AMX: 1.9-3.0x float32 on the
  project's AMD EPYC); without them it is emulated and slower. GPUs: bench/gpu_check.py.
- input pipeline: bench/input_rate.py's pairs/s of trainer.data.paired_dataset over JPEG patch
  pairs of the same size (decoded as Transform decodes), measured once before the models; each
  row's `input x` = input pairs/s / the step's patches/s (< 1: the input pipeline bounds training).
Runtime with the defaults (8 variants; with XLA the first call compiles for 20-40 s): measured
4.5 min on 2 lightly shared cores and 8.7 min under heavy sharing (both with --steps 3). Load moves every absolute number; the
side-by-side XLA ratio much less (it held within 0.1 across runs here).
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

import phone2dslr    # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from phone2dslr.config import TrainConfig  # noqa: E402
from phone2dslr.trainer import dped, models  # noqa: E402
from phone2dslr.trainer.precision import PRECISIONS  # noqa: E402

import input_rate  # noqa: E402  (bench/, on sys.path as the script's folder)


def photo_like(batch: int, size: int, seed: int) -> np.ndarray:
    """Low-frequency colour patches [batch, size, size, 3] in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = rng.random([batch, max(2, size // 16), max(2, size // 16), 3]).astype(np.float32)
    return np.clip(tf.image.resize(coarse, [size, size], method="bicubic").numpy(), 0.0, 1.0)


def conv_rate(batch: int, size: int, channels: int = 64, runs: int = 5) -> float:
    """GFLOP/s of one 3x3 SAME conv2d, channels -> channels, on [batch, size, size, channels]."""
    x = tf.random.uniform([batch, size, size, channels])
    k = tf.random.uniform([3, 3, channels, channels])
    conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"))
    conv(x, k).numpy()
    flop = 2.0 * batch * size * size * 9 * channels * channels
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        conv(x, k).numpy()
        times.append(time.perf_counter() - t)
    return flop / min(times) / 1e9  # best run: the rate the machine can reach right now


def step_gflop(fn, *specs) -> tuple[float, dict[str, float]]:
    """FLOPs of one call of tf.function(fn) traced for `specs`: (GFLOP, GFLOP by op type).

    Per node, TensorFlow's profiler statistics (the "flops" registry of tf.compat.v1.profiler);
    counted only over the nodes the function's outputs and state updates depend on. The traced
    graph also holds gradient ops the tape creates but never uses (a convolution's gradient
    function always builds both its input and its filter gradient); TensorFlow prunes them before
    running, and counting them (as `profile(graph)` does) overstates a GAN step by about 65%.
    """
    from tensorflow.python.framework import ops as tf_ops  # the profiler's per-node statistics
    from tensorflow.python.profiler.internal import flops_registry  # noqa: F401  (registers them)

    concrete = tf.function(fn).get_concrete_function(*specs)
    graph = concrete.graph
    graph_def = graph.as_graph_def()
    fetches = [t.op.name for t in graph.outputs] + [op.name for op in graph.control_outputs]
    level = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")  # v1 graph_util's deprecation notice
    try:
        needed = {n.name for n in tf.compat.v1.graph_util.extract_sub_graph(graph_def, fetches).node}
    finally:
        tf.get_logger().setLevel(level)
    by_type: dict[str, float] = {}
    for node in graph_def.node:
        if node.name not in needed:
            continue
        try:
            flops = tf_ops.get_stats_for_node_def(graph, node, "flops").value
        except ValueError:  # shape not static (e.g. elementwise ops on a dynamic batch): not counted
            continue
        if flops:
            by_type[node.op] = by_type.get(node.op, 0.0) + flops / 1e9
    return sum(by_type.values()), by_type


def analytic_conv_gflop(model: keras.Model, height: int, width: int, batch: int) -> float:
    """Forward FLOPs of a stride-1 SAME fully convolutional model: 2 k^2 c_in c_out H W per Conv2D."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            total += 2 * kh * kw * cin * cout * height * width
    return total * batch / 1e9


def vgg_weights_file(folder: str) -> str:
    """Random VGG-19 (include_top=False) weights in the legacy .h5 format trainer/vgg.py loads."""
    path = os.path.join(folder, "vgg19_random_notop.h5")
    keras.utils.set_random_seed(0)
    keras.applications.VGG19(include_top=False, weights=None).save_weights(path)
    return path


def parse_variant(text: str) -> tuple[str, bool]:
    """'float32', 'mixed_bfloat16+xla' ... -> (precision, jit_compile)."""
    precision, _, xla = text.partition("+")
    if xla not in ("", "xla") or precision not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"variant {text!r}: a precision ({', '.join(PRECISIONS)}), "
                                         "optionally followed by +xla")
    return precision, bool(xla)


def variant_arg(text: str) -> str:
    """argparse type of --variants: the text, once parse_variant accepts it."""
    parse_variant(text)
    return text


def bench_model(model_name: str, content: str, args: argparse.Namespace, vgg_path: str) -> list[dict[str, Any]]:
    """Time one copy per variant of one model alternately; one result row per copy."""
    batch = {"phone": tf.constant(photo_like(args.batch, args.patch, 1)),
             "dslr": tf.constant(photo_like(args.batch, args.patch, 2))}
    spec = {k: tf.TensorSpec(v.shape, v.dtype) for k, v in batch.items()}
    runs = {}
    for variant in args.variants:
        precision, jit = parse_variant(variant)
        # Pinned to the `demo` recipe (no-norm generator, one D step on the same batch), the model
        # the README's training table was measured on; the default recipe would change what is timed.
        cfg = TrainConfig(model=model_name, recipe="demo", content=content,
                          vgg_weights=vgg_path if content == "vgg19" else "",
                          filters=args.filters, batch_size=args.batch, jit_compile=jit, precision=precision)
        keras.utils.set_random_seed(0)
        model = models.create_model(cfg, patch_size=args.patch)
        model(batch["phone"][:1])
        train_fn = model.make_train_function()
        iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
        t = time.perf_counter()
        float(train_fn(iterator)["g_loss"])  # trace (+ XLA compile) and first step
        runs[variant] = {"model": model, "fn": train_fn, "it": iterator, "first_s": time.perf_counter() - t,
                         "times": [], "precision": precision, "xla": jit}
    gflop, by_type = step_gflop(runs[args.variants[0]]["model"].train_step, spec)
    rates = [conv_rate(args.conv_batch or args.batch, args.patch)]
    # Warm-up after the profiler and the conv benchmark: the first step after either was seen
    # to be slow (about 0.7 s extra on a 20 ms step).
    for _ in range(args.warmup):
        for r in runs.values():
            float(r["fn"](r["it"])["g_loss"])
    for _ in range(args.steps):
        for variant in args.variants:
            r = runs[variant]
            t = time.perf_counter()
            float(r["fn"](r["it"])["g_loss"])
            r["times"].append(time.perf_counter() - t)
    rates.append(conv_rate(args.conv_batch or args.batch, args.patch))
    rows = []
    for variant in args.variants:
        r = runs[variant]
        step_s = statistics.median(r["times"])
        rows.append({
            "model": model_name, "content": content, "variant": variant, "precision": r["precision"],
            "xla": r["xla"], "batch": args.batch, "patch": args.patch,
            "filters": args.filters, "step_gflop": gflop, "step_ms": 1e3 * step_s,
            "step_ms_all": [1e3 * s for s in r["times"]], "first_call_s": r["first_s"],
            "patches_per_s": args.batch / step_s, "conv_gflops_adjacent": rates,
            "achieved_gflops": gflop / step_s,
            "step_gflop_by_op": {k: v for k, v in sorted(by_type.items(), key=lambda kv: -kv[1]) if v >= 0.01},
        })
    for row in rows:
        row["vs_first"] = rows[0]["step_ms"] / row["step_ms"]
    return rows


def add_floor(rows: list[dict[str, Any]]) -> float:
    """Floor of each row at the run's peak conv rate (the machine's rate with the least contention)."""
    peak = max(r for row in rows for r in row["conv_gflops_adjacent"])
    for row in rows:
        floor_s = row["step_gflop"] / peak
        row.update(conv_gflops_peak=peak, floor_ms=1e3 * floor_s, floor_patches_per_s=row["batch"] / floor_s,
                   pct_of_floor=100.0 * floor_s / (row["step_ms"] / 1e3))
    return peak


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'model':6} {'content':7} {'variant':18} {'GFLOP/step':>10} {'ms/step':>9} {'patch/s':>8} "
              f"{'GFLOP/s':>8} {'conv GF/s':>11} {'floor p/s':>9} {'% floor':>7} {'vs first':>8} "
              f"{'input x':>7} {'1st call s':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        adjacent = "-".join(f"{v:.0f}" for v in r["conv_gflops_adjacent"])
        print(f"{r['model']:6} {r['content']:7} {r['variant']:18} {r['step_gflop']:10.1f} "
              f"{r['step_ms']:9.0f} {r['patches_per_s']:8.2f} {r['achieved_gflops']:8.1f} {adjacent:>11} "
              f"{r['floor_patches_per_s']:9.2f} {r['pct_of_floor']:7.1f} {r['vs_first']:8.2f} "
              f"{r.get('input_ratio', float('nan')):7.1f} {r['first_call_s']:10.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dped", "wespe"], choices=sorted(models.MODELS))
    parser.add_argument("--contents", nargs="+", default=["pixel", "vgg19"], choices=["pixel", "vgg19"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=100)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per variant, after warm-up")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first call")
    parser.add_argument("--conv-batch", type=int, default=0, help="batch of the conv microbenchmark (0: --batch)")
    parser.add_argument("--variants", nargs="+", type=variant_arg, default=["float32", "float32+xla", "mixed_bfloat16"],
                        help="train.precision per copy, +xla for jit_compile; timed side by side")
    parser.add_argument("--input-pairs", type=int, default=1024,
                        help="JPEG pairs written for the input-pipeline measurement (0: skip it)")
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs visible; batch {args.batch} of "
          f"{args.patch}x{args.patch} patches, {args.filters} generator filters, {args.steps} timed steps "
          f"per variant (median), VGG-19 weights random", flush=True)
    g = dped.build_generator(args.filters)
    counted, _ = step_gflop(lambda x: g(x, training=False),
                            tf.TensorSpec([args.batch, args.patch, args.patch, 3], tf.float32))
    print(f"cross-check, DPED generator forward pass on one batch: counted {counted:.2f} GFLOP, "
          f"analytic Conv2D sum {analytic_conv_gflop(g, args.patch, args.patch, args.batch):.2f} GFLOP",
          flush=True)
    input_pairs_per_s = float("nan")
    if args.input_pairs:
        input_pairs_per_s = input_rate.measure(args.input_pairs, args.patch, args.batch, batches=20)
        print(f"input pipeline alone: {input_pairs_per_s:.0f} pairs/s (trainer.data.paired_dataset, "
              f"{args.patch}x{args.patch} JPEG pairs, batch {args.batch})", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vgg_path = vgg_weights_file(tmp) if "vgg19" in args.contents else ""
        for model_name in args.models:
            for content in args.contents:
                t = time.perf_counter()
                rows.extend(bench_model(model_name, content, args, vgg_path))
                print(f"  {model_name}/{content}: {time.perf_counter() - t:.0f} s", flush=True)
                keras.backend.clear_session()
    peak = add_floor(rows)
    for row in rows:
        row["input_pairs_per_s"] = input_pairs_per_s
        row["input_ratio"] = input_pairs_per_s / row["patches_per_s"]
    print(f"\nbatch {args.batch} of {args.patch}x{args.patch}, {args.filters} filters; conv rate: {peak:.0f} GFLOP/s "
          f"(peak of the measurements before/after each model, shown per row as 'conv GF/s'); "
          f"floor = step GFLOP / peak conv rate; 'vs first' = ms/step of {args.variants[0]} / this variant's; "
          f"'input x' = input pipeline pairs/s / training patches/s (< 1: input-bound)\n")
    print_table(rows)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
