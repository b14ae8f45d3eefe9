"""Decoded image pairs from one split of the image ExampleGen's output.

The components that look at pixels after training (TFLite checks, the run report) read held-out
examples the same way: phone image required, DSLR target only when it is pixel-aligned with it,
and every example they pass over counted by reason rather than dropped silently.
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


def read_samples(split_dir: str, limit: int) -> tuple[list[Sample], dict[str, int]]:
    """The first `limit` examples of a split folder with a decodable phone image, and what was skipped.

    Reads GZIP TFRecords (`*.gz`, the ExampleGen layout); a DSLR image of another size than its phone
    image (unpaired data) is dropped from the sample rather than shown as if it were the target.
    """
    files = sorted(tf.io.gfile.glob(os.path.join(split_dir, "*.gz")))
    skipped = {"no_phone": 0, "undecodable": 0, "dslr_size_mismatch": 0}
    samples: list[Sample] = []
    if not files or limit <= 0:
        return samples, {}
    spec = {key: tf.io.FixedLenFeature([], tf.string, default_value=b"") for key in (PHONE, DSLR, SOURCE)}
    for index, record in enumerate(tf.data.TFRecordDataset(files, compression_type="GZIP")):
        features = tf.io.parse_single_example(record, spec)
        if not features[PHONE].numpy():
            skipped["no_phone"] += 1
            continue
        try:
            phone = decode_image(features[PHONE]).numpy()
            dslr = decode_image(features[DSLR]).numpy() if features[DSLR].numpy() else None
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
            skipped["undecodable"] += 1
            continue
        if dslr is not None and dslr.shape != phone.shape:
            skipped["dslr_size_mismatch"] += 1
            dslr = None
        source = features[SOURCE].numpy().decode("utf-8", "replace")
        samples.append(Sample(index, source, phone, dslr))
        if len(samples) >= limit:
            break
    return samples, {k: v for k, v in skipped.items() if v}
