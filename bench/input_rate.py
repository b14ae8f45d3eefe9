"""Input-pipeline throughput alone: the trainer's tf.data path over real JPEG patch-pair TFRecords.

    python bench/input_rate.py [--pairs 2048] [--patch 100] [--batch 50] [--batches 40] [--cache]

Writes `pairs` DPED-shaped examples (phone and DSLR JPEG patches, quality 95, as the ExampleGen
writes them) into 8 GZIP TFRecord files, then times trainer.data.paired_dataset over them with
the decoding Transform applies (trainer.preprocessing.preprocessing_fn, the graph that the
Trainer's Transform layer runs; called directly here, so no Transform run is needed): shuffled
file order, interleave, parse, shuffle buffer, batch, parallel decode, prefetch. Reported as
pairs/s after a warm-up; a train step that needs more pairs/s than this is input-bound.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import phone2dslr    # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from phone2dslr import features  # noqa: E402
from phone2dslr.trainer import data, preprocessing  # noqa: E402

FILES = 8


def _jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=95)
    return out.getvalue()


def write_pairs(folder: str, pairs: int, patch: int, seed: int = 0) -> list[str]:
    """`pairs` tf.Examples of JPEG patch pairs (photo-like noise, [patch, patch, 3] uint8) in
    FILES GZIP TFRecord files under `folder`; returns the file paths."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(64, patch + 8, patch + 8, 3), dtype=np.uint8)  # distinct JPEGs
    paths = [os.path.join(folder, f"train-{i:02d}.gz") for i in range(FILES)]
    writers = [tf.io.TFRecordWriter(p, options="GZIP") for p in paths]
    for i in range(pairs):
        src = base[i % len(base)]
        dy, dx = rng.integers(0, 8, size=2)
        dslr = src[dy:dy + patch, dx:dx + patch]
        phone = (dslr.astype(np.float32) * 0.8 + 10).astype(np.uint8)
        feats = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b""])) for k in features.BYTES_KEYS}
        feats.update({k: tf.train.Feature(int64_list=tf.train.Int64List(value=[0])) for k in features.INT_KEYS})
        feats[features.PHONE] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[_jpeg(phone)]))
        feats[features.DSLR] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[_jpeg(dslr)]))
        feats[features.DOMAIN] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[features.DOMAIN_PAIRED]))
        writers[i % FILES].write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    for w in writers:
        w.close()
    return paths


def pairs_per_second(files: list[str], patch: int, batch: int, batches: int, warmup: int = 5,
                     cache: bool = False) -> float:
    """Pairs/s that trainer.data.paired_dataset delivers (decoded float32 [batch, patch, patch, 3]
    phone and DSLR batches), measured over `batches` batches after `warmup` batches."""
    spec = features.parsing_spec()

    def transform(raw):
        return preprocessing.preprocessing_fn(raw, {"patch_size": patch})

    ds = data.paired_dataset(files, spec, transform, batch, shuffle=True, repeat=True, cache=cache)
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        b = next(it)
    float(tf.reduce_sum(b["phone"][0, 0, 0]))  # the last batch is really there
    return batches * batch / (time.perf_counter() - t)


def measure(pairs: int, patch: int, batch: int, batches: int, cache: bool = False) -> float:
    """Write the data to a temporary folder, measure, clean up; pairs/s."""
    with tempfile.TemporaryDirectory() as tmp:
        return pairs_per_second(write_pairs(tmp, pairs, patch), patch, batch, batches, cache=cache)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--patch", type=int, default=100)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--cache", action="store_true", help="train.input_cache: records held in memory")
    args = parser.parse_args(argv)
    rate = measure(args.pairs, args.patch, args.batch, args.batches, args.cache)
    print(f"input pipeline: {rate:.0f} pairs/s ({args.patch}x{args.patch} JPEG pairs, batch {args.batch}, "
          f"{os.cpu_count()} CPUs{', cached' if args.cache else ''})")


if __name__ == "__main__":
    main()
