"""Ingestion throughput of the image ExampleGen on each DirectRunner mode, against a plain PIL loop.

    python bench/ingest_bench.py                       # 48 synthetic 640x480 pairs, patch 100
    python bench/ingest_bench.py --pairs 200 --size 1024x768 --patch-size 0
    python bench/ingest_bench.py --data /path/to/dped --phone iphone --patch-size 100

The floor is the same work done in one process with no framework: read each file, decode it
fully, cut the same patches and encode them as PNG. Each mode runs the real executor (list, pair,
decode, normalise, cut, serialize, shuffle, write GZIP TFRecords, write the report) and is
reported as images/s and as a ratio to the floor measured in the same run. Process start-up
(importing TensorFlow in workers) is part of a mode's time, as it is in a real run.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from phone2dslr.components.image_example_gen.images import PNG_COMPRESS_LEVEL  # noqa: E402

MODES = ("in_memory", "multi_threading", "multi_processing")


def synthetic_pair(rng: np.random.Generator, size: tuple[int, int]) -> tuple[bytes, bytes]:
    """A scene with smooth light, hard-edged objects and texture; the phone side blurred, noisier, lower quality."""
    w, h = size
    light = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(light)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        box = (x0, y0, x0 + int(rng.integers(10, w // 3)), y0 + int(rng.integers(10, h // 3)))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    texture = rng.normal(0, 6, (h, w, 1))
    dslr = Image.fromarray(np.clip(np.asarray(light, np.float32) + texture, 0, 255).astype(np.uint8))
    phone = dslr.filter(ImageFilter.GaussianBlur(1.0))
    phone = Image.fromarray(np.clip(np.asarray(phone, np.float32) + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8))
    out = []
    for img, quality in ((phone, 70), (dslr, 92)):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out[0], out[1]


def write_dataset(root: Path, pairs: int, size: tuple[int, int], phone: str) -> None:
    rng = np.random.default_rng(0)
    for group, n in (("training_data", pairs), ("test_data/patches", max(1, pairs // 10))):
        for side in (phone, "canon"):
            (root / phone / group / side).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            p, d = synthetic_pair(rng, size)
            (root / phone / group / phone / f"{i}.jpg").write_bytes(p)
            (root / phone / group / "canon" / f"{i}.jpg").write_bytes(d)


def floor(files: list[tuple[str, bool]], patch: int) -> float:
    """Seconds for the plain single-process loop over (path, is_test) files.

    Whole images (test split, or patch 0) are only decoded: the executor keeps plain JPEG/PNG
    bytes as they are, so re-encoding them here would flatter the pipeline.
    """
    start = time.perf_counter()
    for path, is_test in files:
        with open(path, "rb") as f:
            img = Image.open(io.BytesIO(f.read()))
            img.load()
        img = img.convert("RGB")
        w, h = img.size
        boxes = ([(x, y) for y in range(0, h - patch + 1, patch) for x in range(0, w - patch + 1, patch)]
                 if patch and not is_test else [])
        for x, y in boxes:
            img.crop((x, y, x + patch, y + patch)).save(io.BytesIO(), "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return time.perf_counter() - start


def run_mode(mode: str, data: str, out: str, args: argparse.Namespace) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx.types import standard_artifacts

    from phone2dslr.components.image_example_gen.component import IngestReport
    from phone2dslr.components.image_example_gen.executor import Executor

    beam_args = ["--runner=FnApiRunner", f"--direct_running_mode={mode}"]
    if mode != "in_memory":
        beam_args.append(f"--direct_num_workers={args.workers}")
    examples, report = standard_artifacts.Examples(), IngestReport()
    examples.uri, report.uri = os.path.join(out, "examples"), os.path.join(out, "report")
    props = dict(input_base=data, layout="dped", phone=args.phone, pairing="paired", patch_size=args.patch_size,
                 patch_stride=0, patches_per_image=0, eval_percent=10, max_reject_fraction=1.0, seed=0)
    context = Executor.Context(tmp_dir=os.path.join(out, "tmp"),
                               make_beam_pipeline_fn=lambda: beam.Pipeline(options=PipelineOptions(beam_args)))
    start = time.perf_counter()
    Executor(context).Do({}, {"examples": [examples], "ingest_report": [report]}, props)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="existing DPED-layout root (default: synthetic pairs in a temp folder)")
    parser.add_argument("--pairs", type=int, default=48, help="synthetic training pairs (test adds 10%%)")
    parser.add_argument("--size", default="640x480", help="synthetic image size WxH")
    parser.add_argument("--phone", default="iphone")
    parser.add_argument("--patch-size", type=int, default=100, help="0 keeps images whole")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="direct_num_workers")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    import tfx  # noqa: F401  (before anything that may pull in TFDV)

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if not data:
            data = os.path.join(tmp, "data")
            w, h = (int(v) for v in args.size.split("x"))
            t = time.perf_counter()
            write_dataset(Path(data), args.pairs, (w, h), args.phone)
            print(f"wrote {args.pairs} training pairs of {w}x{h} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        files = []
        for group in ("training_data", "test_data/patches"):
            for side in (args.phone, "canon"):
                folder = Path(data, args.phone, group, side)
                files += [(str(p), group != "training_data") for p in sorted(folder.iterdir()) if p.is_file()]
        n = len(files)
        # Warm-up: one-off imports and lazy initialisation in this process are not any mode's cost.
        warm = os.path.join(tmp, "warm")
        side = max(64, args.patch_size)
        write_dataset(Path(warm), 1, (side, side), args.phone)
        run_mode("in_memory", warm, os.path.join(tmp, "warm_out"), args)
        rows = [("plain PIL loop (1 process)", floor(files, args.patch_size), "")]
        for mode in args.modes.split(","):
            try:
                rows.append((f"Beam DirectRunner {mode}", run_mode(mode, data, os.path.join(tmp, mode), args), ""))
            except Exception as e:  # noqa: BLE001  (a mode that fails is a result too)
                rows.append((f"Beam DirectRunner {mode}", float("nan"), f"FAILED: {type(e).__name__}: "
                             + (str(e).strip().splitlines() or [""])[0][:120]))

    base = n / rows[0][1]
    cut = f"{args.patch_size} px patches" if args.patch_size else "whole images"
    print(f"\n{n} images ({cut}), {os.cpu_count()} CPUs, "
          f"workers={args.workers}")
    print(f"{'method':<36} {'seconds':>8} {'images/s':>9} {'vs floor':>9}")
    results = []
    for name, seconds, note in rows:
        rate = n / seconds if seconds == seconds else float("nan")
        print(f"{name:<36} {seconds:>8.2f} {rate:>9.1f} {rate / base:>8.2f}x {note}".rstrip())
        results.append({"method": name, "seconds": seconds, "images_per_s": rate, "ratio": rate / base, "note": note})
    if args.json:
        Path(args.json).write_text(json.dumps({"images": n, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
