"""Input pipelines: raw TFRecords -> the Transform graph -> batches the models train on.

Paired methods (DPED) need examples holding both images; WESPE draws its phone and DSLR batches
from two independently shuffled streams, so it trains on unpaired folders and ignores pairing in
paired ones. Validation always uses pairs: PSNR/SSIM need a target.
"""
from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from phone2dslr.trainer.preprocessing import DOMAIN, DSLR, PHONE

Batch = dict[str, tf.Tensor]


def expand(patterns: list[str]) -> list[str]:
    """TFX hands over file patterns (`.../Split-train/*`); tf.data needs the files themselves."""
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {', '.join(patterns)}")
    return files


def _raw_examples(files: list[str], raw_feature_spec: dict[str, Any]) -> tf.data.Dataset:
    files_ds = tf.data.Dataset.from_tensor_slices(expand(files))
    ds = tf.data.TFRecordDataset(files_ds, compression_type="GZIP")
    return ds.map(lambda s: tf.io.parse_single_example(s, raw_feature_spec),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _present(key: str) -> Callable[[dict[str, tf.Tensor]], tf.Tensor]:
    return lambda ex: tf.strings.length(tf.reshape(ex[key], [-1])[0]) > 0


def _transformed(ds: tf.data.Dataset, transform: Callable[[Any], Batch], batch: int) -> tf.data.Dataset:
    return ds.batch(batch, drop_remainder=True).map(transform, num_parallel_calls=tf.data.AUTOTUNE)


def paired_dataset(files: list[str], raw_feature_spec: dict[str, Any], transform: Callable[[Any], Batch],
                   batch: int, shuffle: bool, repeat: bool, seed: int = 0) -> tf.data.Dataset:
    """Batches {phone, dslr} of aligned pairs."""
    ds = _raw_examples(files, raw_feature_spec).filter(
        lambda ex: tf.logical_and(_present(PHONE)(ex), _present(DSLR)(ex)))
    if shuffle:
        ds = ds.shuffle(2048, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = _transformed(ds, transform, batch).map(lambda t: {PHONE: t[PHONE], DSLR: t[DSLR]})
    return ds.prefetch(tf.data.AUTOTUNE)


def unpaired_dataset(files: list[str], raw_feature_spec: dict[str, Any], transform: Callable[[Any], Batch],
                     batch: int, seed: int = 0) -> tf.data.Dataset:
    """Batches {phone, dslr} whose two halves come from independently shuffled streams."""
    raw = _raw_examples(files, raw_feature_spec)
    streams = []
    for key, stream_seed in ((PHONE, seed), (DSLR, seed + 1)):
        s = raw.filter(_present(key)).shuffle(2048, seed=stream_seed).repeat()
        streams.append(_transformed(s, transform, batch).map(lambda t, k=key: t[k]))
    return tf.data.Dataset.zip(tuple(streams)).map(
        lambda a, b: {PHONE: a, DSLR: b}).prefetch(tf.data.AUTOTUNE)


def count_pairs(files: list[str], raw_feature_spec: dict[str, Any]) -> int:
    """How many paired examples a split holds (validation needs at least one batch)."""
    ds = _raw_examples(files, {k: v for k, v in raw_feature_spec.items() if k in (PHONE, DSLR, DOMAIN)})
    ds = ds.filter(lambda ex: tf.logical_and(_present(PHONE)(ex), _present(DSLR)(ex)))
    return int(ds.reduce(0, lambda n, _: n + 1))
