"""A full-resolution photo through the DPED generator: whole image vs exact tiles, Keras vs TFLite.

    python bench/fullres_bench.py [--size 1536x2048] [--tile 512] [--threads 2] [--out results.json]

One run builds the DPED generator (trainer.dped.build_generator, 64 filters, random weights, the
linear 1x1 head rescaled so outputs span [0, 1] like a photo), saves it with the project's
exporter, converts float32 and dynamic-range int8 TFLite (export/tflite_convert.py), and upscales a bundled
skimage photo (coffee) to the size. Each variant then runs in its own subprocess:

    keras-whole     Keras eager call on the whole photo (the reference output)
    keras-tiled     the same model through export/tiling.py
    tflite-f32-whole / tflite-f32-tiled / tflite-int8-tiled    LiteRT, N threads

Measured per variant: seconds of the inference call alone (model loaded, warm-up excluded: one
small call first), and memory as the subprocess's peak resident set size, `ru_maxrss` of
getrusage(RUSAGE_SELF) read in the subprocess at exit; it sees TensorFlow's and XNNPACK's native
allocations, which tracemalloc does not. `base` is the RSS after imports and model load, before the
photo is processed, so peak - base is what the photo costs. PSNR is against keras-whole (both
clipped to [0, 1], as the serving signature does); tiled float32 should be exact (> 100 dB).
A few minutes on 2 cores.

Instance-normalized generator (the official DPED network, export/official_dped.py, 64 filters,
random weights and random normalization affines), each variant cold in its own process with one
photo, as `phone2dslr enhance` runs it (no warm-up: `seconds` includes graph building / tracing,
`cpu s` the CPU time of those seconds, `process s` the subprocess' whole wall time from start to
exit; x = ratio to authors-graph; PSNR against authors-graph):

    authors-graph        the authors' generator re-stated as their TF1 graph (aiff22/DPED
                         models.py:4-56 and :120-132, tf.compat.v1 placeholder, variables and
                         Session), run on the whole photo: the reference for these rows
    official-whole       our Keras model on the whole photo
    official-streamed-f32 / -f16   export/streamed_norm.py via tiling.tiled_predict (bands of about
                         tile x tile pixels; whole-image activations kept as float32 / float16)
    official-tflite-f32 / -f16     the streamable float32 .tflite (export/tflite_stages.py) on LiteRT
                         alone, as `enhance` runs it (export/streamed_tflite.py, streamed in bands;
                         the process imports no TensorFlow); activations kept as float32 / float16
    official-tflite-recompute      the same file recomputed tile by tile (`enhance --stream-memory 0`):
                         bounded memory for photos whose activations do not fit (run it at --size 3000x4000)

    python bench/fullres_bench.py --variants authors-graph,official-whole,official-streamed-f32,official-streamed-f16
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import phone2dslr    # noqa: E402,F401  (Keras/TF environment first)
import numpy as np  # noqa: E402

VARIANTS = ("keras-whole", "keras-tiled", "tflite-f32-whole", "tflite-f32-tiled", "tflite-int8-tiled")
OFFICIAL = ("authors-graph", "official-whole", "official-streamed-f32", "official-streamed-f16",
            "official-tflite-f32", "official-tflite-f16", "official-tflite-recompute")


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024.0


def photo(height: int, width: int) -> np.ndarray:
    """The skimage 'coffee' photo (600x400) upscaled (bicubic) to [1, H, W, 3] in [0, 1]."""
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.coffee()).resize((width, height), Image.BICUBIC)
    return (np.asarray(image, np.float32) / 255.0)[np.newaxis]


def prepare_official(work: str, seed: int, tflite: bool = False) -> None:
    """The official generator's weights (random, normalization shift ~ N(0, 0.3), scale ~ N(1, 0.3)
    so the statistics matter) as official.npz: conv{i}/kernel, conv{i}/bias, norm{i}/shift, norm{i}/scale."""
    import tf_keras as keras

    from phone2dslr.export import official_dped

    keras.utils.set_random_seed(seed)
    model = official_dped.build_generator(64)
    rng, arrays = np.random.default_rng(seed), {}
    for i in range(1, official_dped.NUM_CONVS + 1):
        arrays[f"conv{i}/kernel"], arrays[f"conv{i}/bias"] = model.get_layer(f"conv{i}").get_weights()
    for i in official_dped.NORMALIZED:
        arrays[f"norm{i}/shift"] = rng.normal(0, 0.3, 64).astype(np.float32)
        arrays[f"norm{i}/scale"] = rng.normal(1, 0.3, 64).astype(np.float32)
    np.savez(os.path.join(work, "official.npz"), **arrays)
    if tflite:
        from phone2dslr.export import tflite_stages

        with open(os.path.join(work, "official.tflite"), "wb") as f:
            f.write(tflite_stages.convert_streamable(official_model(arrays)))


def official_model(weights: dict):
    """Our Keras official generator with the weights of official.npz."""
    from phone2dslr.export import official_dped

    model = official_dped.build_generator(64)
    for layer in model.layers:
        if layer.name.startswith("conv"):
            layer.set_weights([weights[f"{layer.name}/kernel"], weights[f"{layer.name}/bias"]])
        elif layer.name.startswith("norm"):
            layer.set_weights([weights[f"{layer.name}/shift"], weights[f"{layer.name}/scale"]])
    return model


def authors_graph(weights: dict) -> Callable[[np.ndarray], np.ndarray]:
    """The authors' generator as they build it (aiff22/DPED models.py:4-56: tf.nn.conv2d 'SAME' +
    bias, relu, four residual blocks, tanh * 0.58 + 0.5; instance norm models.py:120-132 with
    tf.nn.moments over [1, 2] and (sigma_sq + 1e-3) ** .5), in a TF1 graph and Session."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [1, None, None, 3])

        def conv(t, i):
            w, b = tf.Variable(weights[f"conv{i}/kernel"]), tf.Variable(weights[f"conv{i}/bias"])
            return tf.nn.conv2d(t, w, strides=[1, 1, 1, 1], padding="SAME") + b

        def instance_norm(t, i):
            mu, sigma_sq = tf.nn.moments(t, [1, 2], keepdims=True)
            shift, scale = tf.Variable(weights[f"norm{i}/shift"]), tf.Variable(weights[f"norm{i}/scale"])
            return scale * ((t - mu) / (sigma_sq + 1e-3) ** 0.5) + shift

        c = skip = tf.nn.relu(conv(x, 1))
        for k in range(4):
            i = 2 + 2 * k
            c = tf.nn.relu(instance_norm(conv(c, i), i))
            c = skip = tf.nn.relu(instance_norm(conv(c, i + 1), i + 1)) + skip
        c = tf.nn.relu(conv(tf.nn.relu(conv(c, 10)), 11))
        enhanced = tf.nn.tanh(conv(c, 12)) * 0.58 + 0.5
        session = v1.Session(graph=graph)
        session.run(v1.global_variables_initializer())
    return lambda image: session.run(enhanced, {x: image})


def official_worker(variant: str, work: str, tile: int) -> dict:
    """One official-generator variant, cold (no warm-up), on the photo; output saved for the PSNR.
    The official-tflite variants import no TensorFlow (as `enhance` with a .tflite)."""
    x = np.load(os.path.join(work, "photo.npy"))
    base = _rss_mib()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    storage = np.float16 if variant.endswith("f16") else np.float32
    if variant.startswith("official-tflite"):
        from phone2dslr.export.streamed_tflite import StreamedTFLite

        with open(os.path.join(work, "official.tflite"), "rb") as f:
            streamed = StreamedTFLite(f.read())
        memory = 0 if variant.endswith("recompute") else 1e9
        y = streamed.run(x, tile=tile, storage=storage, memory_mib=memory)
        bands = streamed.count(x.shape[1], x.shape[2], tile, storage, memory)
    else:
        from phone2dslr.export import tiling

        weights = dict(np.load(os.path.join(work, "official.npz")))
        if variant == "authors-graph":
            y = authors_graph(weights)(x)
        else:
            model = official_model(weights)
            y = tiling.tiled_predict(model, x, tile=tile if "streamed" in variant else 0, storage=storage)
        bands = tiling.tiled_predict_count(model, x.shape[1], x.shape[2], tile, storage) \
            if "streamed" in variant else 1
    seconds = time.perf_counter() - start
    done = resource.getrusage(resource.RUSAGE_SELF)  # CPU seconds: steadier than wall on a shared machine
    cpu = done.ru_utime + done.ru_stime - usage.ru_utime - usage.ru_stime
    np.save(os.path.join(work, f"{variant}.npy"), np.clip(y, 0.0, 1.0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"variant": variant, "seconds": seconds, "cpu_s": cpu, "peak_rss_mib": peak, "base_rss_mib": base,
            "tiles": bands, "radius": None}


def prepare(work: str, x: np.ndarray, seed: int) -> None:
    """Generator with random weights (head spread to [0, 1]), its SavedModel, weights and TFLite files."""
    import tensorflow as tf
    import tf_keras as keras

    from phone2dslr.export import tflite_convert
    from phone2dslr.trainer.serving import export_image_generator
    from phone2dslr.trainer.dped import build_generator

    keras.utils.set_random_seed(seed)
    generator = build_generator(filters=64)
    small = tf.image.resize(x, [x.shape[1] // 8, x.shape[2] // 8], antialias=True).numpy()
    y = generator(small, training=False).numpy().reshape(-1, 3)
    head = generator.get_layer("enhanced")
    kernel, bias = head.get_weights()
    scale = 0.25 / np.maximum(y.std(axis=0), 1e-6)  # mean 0.5, std 0.25 per channel
    head.set_weights([kernel * scale, (bias - y.mean(axis=0)) * scale + 0.5])
    generator.save_weights(os.path.join(work, "weights", "generator"))
    export_image_generator(generator, os.path.join(work, "saved_model"))
    for variant in ("float32", "dynamic_int8"):
        with open(os.path.join(work, f"{variant}.tflite"), "wb") as f:
            f.write(tflite_convert.convert(os.path.join(work, "saved_model"), variant))
    np.save(os.path.join(work, "photo.npy"), x)


def worker(variant: str, work: str, tile: int, threads: int) -> dict:
    """Run one variant in this (fresh) process; save its output; return timings and memory."""
    from phone2dslr.export import tiling
    from phone2dslr.export.tflite_runtime import TFLiteRunner

    x = np.load(os.path.join(work, "photo.npy"))
    tiled = variant.endswith("tiled")
    if variant.startswith("keras"):
        from phone2dslr.trainer.dped import build_generator

        model = build_generator(filters=64)
        model.load_weights(os.path.join(work, "weights", "generator")).expect_partial()
        fn, radius = tiling.keras_fn(model), tiling.model_radius(model)
    else:
        path = os.path.join(work, ("float32" if "f32" in variant else "dynamic_int8") + ".tflite")
        fn, radius = TFLiteRunner(path, threads=threads), tiling.tflite_radius(path)
    fn(x[:, :64, :64])  # warm-up (kernels, weight packing) outside the timing
    base = _rss_mib()
    start = time.perf_counter()
    y = tiling.tiled_apply(fn, x, tile=tile if tiled else 0, radius=radius)
    seconds = time.perf_counter() - start
    np.save(os.path.join(work, f"{variant}.npy"), np.clip(y, 0.0, 1.0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    tiles = tiling.tile_count(x.shape[1], x.shape[2], tile, radius) if tiled else 1
    return {"variant": variant, "seconds": seconds, "peak_rss_mib": peak, "base_rss_mib": base,
            "tiles": tiles, "radius": radius}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1536x2048", help="HxW of the photo")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"any of {', '.join(VARIANTS + OFFICIAL)}")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = official_worker(args.worker, args.work, args.tile) if args.worker in OFFICIAL else \
            worker(args.worker, args.work, args.tile, args.threads)
        print(json.dumps(run))
        return 0

    height, width = (int(v) for v in args.size.lower().split("x"))
    variants = args.variants.split(",")
    with tempfile.TemporaryDirectory(prefix="fullres_bench_") as work:
        start = time.perf_counter()
        x = photo(height, width)
        if any(v in VARIANTS for v in variants):
            prepare(work, x, args.seed)
        else:
            np.save(os.path.join(work, "photo.npy"), x)
        if any(v in OFFICIAL for v in variants):
            prepare_official(work, args.seed, tflite=any(v.startswith("official-tflite") for v in variants))
        print(f"prepared model and {height}x{width} photo in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        rows = []
        for variant in variants:
            command = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--work", work,
                       "--tile", str(args.tile), "--threads", str(args.threads)]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{variant} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            rows[-1]["process_s"] = time.perf_counter() - started
            print(f"{variant}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
        for row in rows:
            name = "authors-graph" if row["variant"] in OFFICIAL else "keras-whole"
            reference = os.path.join(work, f"{name}.npy")
            out = np.load(os.path.join(work, f"{row['variant']}.npy"))
            row["psnr_vs_reference"] = psnr(out, np.load(reference)) if os.path.exists(reference) else None

    plain = [r for r in rows if r["variant"] in VARIANTS]
    if plain:
        print(f"\n{height}x{width} photo, DPED generator (64 filters, random weights), tile {args.tile}, "
              f"TFLite threads {args.threads}; memory = subprocess peak RSS (getrusage ru_maxrss), "
              "base = RSS before the photo")
        print(f"{'variant':<18} {'tiles':>5} {'seconds':>8} {'peak MiB':>9} {'base MiB':>9} {'photo MiB':>9} "
              f"{'PSNR dB':>8}")
        for r in plain:
            p = r["psnr_vs_reference"]
            shown = "ref" if r["variant"] == "keras-whole" else ("inf" if p == float("inf") else f"{p:.1f}")
            print(f"{r['variant']:<18} {r['tiles']:>5} {r['seconds']:>8.1f} {r['peak_rss_mib']:>9.0f} "
                  f"{r['base_rss_mib']:>9.0f} {r['peak_rss_mib'] - r['base_rss_mib']:>9.0f} {shown:>8}")
    official = [r for r in rows if r["variant"] in OFFICIAL]
    if official:
        ref = next((r for r in official if r["variant"] == "authors-graph"), None)
        print(f"\n{height}x{width} photo, official DPED generator (instance norm, 64 filters, random weights), "
              f"tile {args.tile}; cold processes, one photo each; x = ratio to authors-graph")
        print(f"{'variant':<22} {'runs':>5} {'seconds':>8} {'cpu s':>6} {'x cpu':>5} {'process s':>9} {'x wall':>6} "
              f"{'peak MiB':>9} {'x peak':>6} {'photo MiB':>9} {'PSNR dB':>8}")
        for r in official:
            p = r["psnr_vs_reference"]
            shown = "ref" if r is ref else ("-" if p is None else "inf" if p == float("inf") else f"{p:.1f}")
            wall = f"{r['process_s'] / ref['process_s']:.2f}" if ref else "-"
            mem = f"{r['peak_rss_mib'] / ref['peak_rss_mib']:.2f}" if ref else "-"
            cpu = f"{r['cpu_s'] / ref['cpu_s']:.2f}" if ref else "-"
            print(f"{r['variant']:<22} {r['tiles']:>5} {r['seconds']:>8.1f} {r['cpu_s']:>6.1f} {cpu:>5} "
                  f"{r['process_s']:>9.1f} {wall:>6} {r['peak_rss_mib']:>9.0f} {mem:>6} "
                  f"{r['peak_rss_mib'] - r['base_rss_mib']:>9.0f} {shown:>8}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"size": [height, width], "tile": args.tile, "threads": args.threads, "rows": rows}, f,
                      indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
