"""Ingestion throughput of the image ExampleGen on each Beam engine, against a plain PIL loop.

    python bench/ingest_bench.py                        # 48 synthetic 640x480 pairs, patch 100, DirectRunner modes
    python bench/ingest_bench.py --case dped            # 4,000 100x100 JPEG pairs (+400 test), as DPED ships them:
                                                        # DirectRunner, portable runner + worker pool, Dask; 1 and 2 workers
    python bench/ingest_bench.py --case dped --pairs 400 --workers 2   # a quick look
    python bench/ingest_bench.py --data /path/to/dped --phone iphone --patch-size 100 --engines in_memory,dask

The floor is the same work done in one process with no framework: read each file, decode it
fully and, where the executor cuts patches smaller than the image, cut them and encode them as
PNG (a patch covering the whole image keeps the file's bytes, as the executor does). Each engine
runs the real executor (list, pair, decode, normalise, cut, serialize, shuffle, write GZIP
TFRecords, write the report) and is reported as files/s and as a ratio to the floor measured in
the same run. Each engine first ingests one pair, so one-off imports in this process and in
long-lived workers (the worker pool's forkserver, the dask workers) are not its cost; what every
run pays (starting a job's SDK workers, process start-up of multi_processing) is.

Engines: in_memory, multi_threading, multi_processing (the DirectRunner's FnApiRunner modes),
portable (PortableRunner, embedded job service, --environment_type=EXTERNAL, a local worker pool:
phone2dslr.pipeline.beam_workers) and dask (phone2dslr's DaskRunner on a local dask.distributed
cluster of worker processes). --workers sets worker processes for all but in_memory.
"""
from __future__ import annotations

import argparse
import contextlib
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
ENGINES = (*MODES, "portable", "dask")
# --case: (training pairs, image size, patch size, default engines, default worker counts)
CASES = {"photos": (48, "640x480", 100, ",".join(MODES), "2"),
         "dped": (4000, "100x100", 100, "in_memory,portable,dask", "1,2")}
DPED_FILES = 2 * 160_000  # about 160K training patch pairs per phone in DPED: 320K files


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

    Whole images (test split, patch 0, or a patch covering the whole image) are only decoded: the
    executor keeps plain JPEG/PNG bytes as they are, so re-encoding them here would flatter the pipeline.
    """
    start = time.perf_counter()
    for path, is_test in files:
        with open(path, "rb") as f:
            img = Image.open(io.BytesIO(f.read()))
            img.load()
        img = img.convert("RGB")
        w, h = img.size
        boxes = ([(x, y) for y in range(0, h - patch + 1, patch) for x in range(0, w - patch + 1, patch)]
                 if patch and not is_test and (w, h) != (patch, patch) else [])
        for x, y in boxes:
            img.crop((x, y, x + patch, y + patch)).save(io.BytesIO(), "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return time.perf_counter() - start


@contextlib.contextmanager
def engine_args(engine: str, workers: int, log_dir: str):
    """beam_pipeline_args for one engine, with its worker processes running for the `with` block."""
    from phone2dslr.pipeline import beam_workers

    if engine in MODES:
        extra = [] if engine == "in_memory" else [f"--direct_num_workers={workers}"]
        yield ["--runner=FnApiRunner", f"--direct_running_mode={engine}", *extra]
    elif engine == "portable":
        with beam_workers.worker_pool(log=os.path.join(log_dir, "worker_pool.log")) as pool:
            yield beam_workers.portable_args(pool, parallelism=workers)
    elif engine == "dask":
        with beam_workers.dask_cluster(workers=workers, log=os.path.join(log_dir, "dask.log")) as scheduler:
            yield beam_workers.dask_args(scheduler)
    else:
        raise ValueError(f"engine {engine!r}: choose from {', '.join(ENGINES)}")


def run_executor(beam_args: list[str], data: str, out: str, args: argparse.Namespace) -> float:
    """Seconds for the image ExampleGen executor over `data` on `beam_args`."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx.types import standard_artifacts

    from phone2dslr.components.image_example_gen.component import IngestReport
    from phone2dslr.components.image_example_gen.executor import Executor

    examples, report = standard_artifacts.Examples(), IngestReport()
    examples.uri, report.uri = os.path.join(out, "examples"), os.path.join(out, "report")
    props = dict(input_base=data, layout="dped", phone=args.phone, pairing="paired", patch_size=args.patch_size,
                 patch_stride=0, patches_per_image=0, eval_percent=10, max_reject_fraction=1.0, seed=0)
    context = Executor.Context(tmp_dir=os.path.join(out, "tmp"),
                               make_beam_pipeline_fn=lambda: beam.Pipeline(options=PipelineOptions(beam_args)))
    start = time.perf_counter()
    Executor(context).Do({}, {"examples": [examples], "ingest_report": [report]}, props)
    return time.perf_counter() - start


def run_engine(engine: str, workers: int, data: str, warm: str, tmp: str,
               args: argparse.Namespace) -> tuple[float, float]:
    """(seconds over `data`, seconds of a run over the one-pair `warm` data: the cost of any run)
    for one engine, after a warm-up run over `warm` on the same workers."""
    name = f"{engine}-{workers}"
    with engine_args(engine, workers, tmp) as beam_args:
        run_executor(beam_args, warm, os.path.join(tmp, f"warm-{name}"), args)
        startup = run_executor(beam_args, warm, os.path.join(tmp, f"startup-{name}"), args)
        return run_executor(beam_args, data, os.path.join(tmp, name), args), startup


def label(engine: str, workers: int) -> str:
    if engine == "portable":
        return f"PortableRunner + worker pool, {workers} worker{'s' * (workers > 1)}"
    if engine == "dask":
        return f"DaskRunner, {workers} dask worker{'s' * (workers > 1)}"
    suffix = f", {workers} workers" if engine != "in_memory" else ""
    return f"DirectRunner {engine}{suffix}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="photos",
                        help="photos: 640x480 photos cut into patches; dped: 100x100 JPEG pairs as DPED ships them")
    parser.add_argument("--data", help="existing DPED-layout root (default: synthetic pairs in a temp folder)")
    parser.add_argument("--pairs", type=int, help="synthetic training pairs (test adds 10%%)")
    parser.add_argument("--size", help="synthetic image size WxH")
    parser.add_argument("--phone", default="iphone")
    parser.add_argument("--patch-size", type=int, help="0 keeps images whole")
    parser.add_argument("--engines", help=f"comma-separated, from {','.join(ENGINES)}")
    parser.add_argument("--workers", help="comma-separated worker process counts, one row each (not in_memory)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    pairs, size, patch, engines, workers = CASES[args.case]
    args.pairs = args.pairs or pairs
    args.size = args.size or size
    args.patch_size = patch if args.patch_size is None else args.patch_size
    engines = (args.engines or engines).split(",")
    counts = [int(w) for w in (args.workers or workers).split(",")]

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
        # Warm-up data: one pair; one-off imports and lazy initialisation are not any engine's cost.
        warm = os.path.join(tmp, "warm")
        side = max(64, args.patch_size)
        write_dataset(Path(warm), 1, (side, side), args.phone)
        run_executor(["--runner=FnApiRunner", "--direct_running_mode=in_memory"], warm,
                     os.path.join(tmp, "warm_out"), args)
        rows = [("plain PIL loop (1 process, the floor)", floor(files, args.patch_size), 0.0, "")]
        for engine in engines:
            for count in ([1] if engine == "in_memory" else counts):
                try:
                    rows.append((label(engine, count), *run_engine(engine, count, data, warm, tmp, args), ""))
                except Exception as e:  # noqa: BLE001  (an engine that fails is a result too)
                    rows.append((label(engine, count), float("nan"), float("nan"), f"FAILED: {type(e).__name__}: "
                                 + (str(e).strip().splitlines() or [""])[0][:120]))
                print(f"  {rows[-1][0]}: {rows[-1][1]:.1f} s", file=sys.stderr, flush=True)

    base = n / rows[0][1]
    cut = f"{args.patch_size} px patches" if args.patch_size else "whole images"
    print(f"\n{n} files ({args.pairs} training pairs + {n // 2 - args.pairs} test, {args.size}, {cut}), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    # A run costs its start-up (a one-pair run: job submission, workers, the report) plus the files at
    # the marginal rate; one DPED phone is extrapolated so, where the files dominate the measured run.
    dped_case = args.case == "dped"
    print(f"{'method':<44} {'seconds':>8} {'files/s':>8} {'vs floor':>9} {'start-up s':>10}"
          + (f" {'DPED phone':>11}" if dped_case else ""))
    results = []
    for name, seconds, startup, note in rows:
        rate = n / seconds if seconds == seconds else float("nan")
        dped_min = (startup + DPED_FILES * (seconds - startup) / n) / 60 if seconds > 2 * startup else float("nan")
        dped = (f" {dped_min:>7.1f} min" if dped_min == dped_min else f" {'-':>11}") if dped_case else ""
        print(f"{name:<44} {seconds:>8.2f} {rate:>8.1f} {rate / base:>8.2f}x {startup:>10.1f}{dped} {note}".rstrip())
        results.append({"method": name, "seconds": seconds, "files_per_s": rate, "ratio": rate / base,
                        "startup_s": startup, "dped_phone_min": dped_min, "note": note})
    if dped_case:
        print(f"DPED phone: {DPED_FILES:,} files, start-up + files at the marginal rate "
              "('-': start-up dominates this run)")
    if args.json:
        Path(args.json).write_text(json.dumps({"files": n, "case": args.case, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
