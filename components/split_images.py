"""Decoded image pairs from one split of the image ExampleGen's output.

The components that look at pixels after training (TFLite checks, int8 calibration, the run
report) read examples the same way: a seeded sample spread over the whole split (not its first
examples, which may all come from one photo), phone image required, DSLR target only when it is
pixel-aligned with it, and every example they pass over counted by reason rather than dropped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from phone2dslr.features import DSLR, PHONE, SOURCE
from phone2dslr.trainer.preprocessing import decode_image


@dataclass
class Sample:
    """One decoded example: float32 [H, W, 3] images in [0, 1]; dslr None when not pixel-aligned."""

    index: int  # position in the split, so a reader can find the example again
    source: str
    phone: np.ndarray
    dslr: np.ndarray | None


def sample_positions(n: int, limit: int, seed: int) -> list[int]:
    """`limit` sorted positions out of range(n), spread over all of it and reproducible from `seed`.

    Jittered systematic sampling: range(n) is cut into `limit` equal strata (stratum i covers
    [floor(i n / limit), floor((i + 1) n / limit))) and one position is drawn uniformly from each
    with numpy's PCG64 seeded by `seed`. Unlike the first `limit` examples, the sample covers the
    whole split (every stratum, so the start, middle and end of it), and unlike plain random
    sampling it never clusters. All of range(n) when n <= limit.
    """
    if n <= limit:
        return list(range(n))
    if limit <= 0:
        return []
    rng = np.random.default_rng(seed)
    edges = [i * n // limit for i in range(limit + 1)]
    return [int(rng.integers(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def read_samples(split_dir: str, limit: int, seed: int = 0) -> tuple[list[Sample], dict[str, int]]:
    """A seeded sample of `limit` examples spread over a split folder (sample_positions), and what was skipped.

    Reads GZIP TFRecords (`*.gz`, the ExampleGen layout): once to find the examples that carry a
    phone image (the others are counted as "no_phone"), then to decode the chosen ones. An
    undecodable example is counted and replaced by a draw from the examples not tried yet, so the
    sample holds `limit` images whenever the split has that many usable ones. Samples come in split
    order; `Sample.index` is the position in the split (files sorted by name). A DSLR image of
    another size than its phone image (unpaired data) is dropped from the sample rather than shown
    as if it were the target. An empty or missing folder gives ([], {}).
    """
    files = sorted(tf.io.gfile.glob(os.path.join(split_dir, "*.gz")))
    if not files or limit <= 0:
        return [], {}
    spec = {key: tf.io.FixedLenFeature([], tf.string, default_value=b"") for key in (PHONE, DSLR, SOURCE)}
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").enumerate()
    has_phone = records.map(lambda i, r: (i, tf.strings.length(tf.io.parse_single_example(r, spec)[PHONE]) > 0),
                            num_parallel_calls=tf.data.AUTOTUNE).batch(4096)
    flags = [(i.numpy(), p.numpy()) for i, p in has_phone]
    with_phone = np.concatenate([i[p] for i, p in flags] or [np.zeros([0], np.int64)])
    skipped = {"no_phone": sum(len(i) for i, _ in flags) - len(with_phone), "undecodable": 0,
               "dslr_size_mismatch": 0}
    samples: list[Sample] = []
    tried = np.zeros(len(with_phone), bool)
    draw = 0
    while len(samples) < limit and not tried.all():
        untried = np.flatnonzero(~tried)
        picked = untried[sample_positions(len(untried), limit - len(samples), seed + draw)]
        tried[picked] = True
        draw += 1
        chosen = tf.constant(with_phone[picked], tf.int64)
        for index, record in records.filter(lambda i, _: tf.reduce_any(tf.equal(i, chosen))):
            sample = _decode(int(index), tf.io.parse_single_example(record, spec), skipped)
            if sample is not None:
                samples.append(sample)
    samples.sort(key=lambda s: s.index)
    return samples, {k: v for k, v in skipped.items() if v}


def _decode(index: int, features: dict[str, tf.Tensor], skipped: dict[str, int]) -> Sample | None:
    try:
        phone = decode_image(features[PHONE]).numpy()
        dslr = decode_image(features[DSLR]).numpy() if features[DSLR].numpy() else None
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        skipped["undecodable"] += 1
        return None
    if dslr is not None and dslr.shape != phone.shape:
        skipped["dslr_size_mismatch"] += 1
        dslr = None
    return Sample(index, features[SOURCE].numpy().decode("utf-8", "replace"), phone, dslr)
