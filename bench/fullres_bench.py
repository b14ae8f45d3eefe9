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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import phone2dslr    # noqa: E402,F401  (Keras/TF environment first)
import numpy as np  # noqa: E402

VARIANTS = ("keras-whole", "keras-tiled", "tflite-f32-whole", "tflite-f32-tiled", "tflite-int8-tiled")


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
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.work, args.tile, args.threads)))
        return 0

    height, width = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="fullres_bench_") as work:
        start = time.perf_counter()
        prepare(work, photo(height, width), args.seed)
        print(f"prepared model and {height}x{width} photo in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        rows = []
        for variant in args.variants.split(","):
            command = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--work", work,
                       "--tile", str(args.tile), "--threads", str(args.threads)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{variant} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{variant}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
        reference = np.load(os.path.join(work, "keras-whole.npy")) if "keras-whole" in args.variants else None
        for row in rows:
            out = np.load(os.path.join(work, f"{row['variant']}.npy"))
            row["psnr_vs_keras_whole"] = psnr(out, reference) if reference is not None else None

    print(f"\n{height}x{width} photo, DPED generator (64 filters, random weights), tile {args.tile}, "
          f"TFLite threads {args.threads}; memory = subprocess peak RSS (getrusage ru_maxrss), "
          "base = RSS before the photo")
    print(f"{'variant':<18} {'tiles':>5} {'seconds':>8} {'peak MiB':>9} {'base MiB':>9} {'photo MiB':>9} "
          f"{'PSNR dB':>8}")
    for r in rows:
        p = r["psnr_vs_keras_whole"]
        shown = "ref" if r["variant"] == "keras-whole" else ("inf" if p == float("inf") else f"{p:.1f}")
        print(f"{r['variant']:<18} {r['tiles']:>5} {r['seconds']:>8.1f} {r['peak_rss_mib']:>9.0f} "
              f"{r['base_rss_mib']:>9.0f} {r['peak_rss_mib'] - r['base_rss_mib']:>9.0f} {shown:>8}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"size": [height, width], "tile": args.tile, "threads": args.threads, "rows": rows}, f,
                      indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
