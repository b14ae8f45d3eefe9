"""Input pipelines: raw TFRecords -> the Transform graph -> batches the models train on.

Paired methods (DPED) need examples holding both images; WESPE draws its phone and DSLR batches
from two independently shuffled streams, so it trains on unpaired folders and ignores pairing in
paired ones. Validation always uses pairs: PSNR/SSIM need a target.

Mixing: a photo's patches may sit next to each other in a file (the image ExampleGen writes its
splits in a seeded random order, but other writers need not), and a shuffle buffer only mixes what
it holds. So training streams shuffle the file order (seeded, again every epoch), read
`CYCLE_LENGTH` files at once one record from each in turn (interleave), then shuffle through
`SHUFFLE_BUFFER` examples. Every step is deterministic given the seed: the same seed gives the
same batches, in the same order.

Speed (what keeps an accelerator fed): records are read from CYCLE_LENGTH files in parallel,
parsed in parallel, and each batch is decoded by the Transform graph in parallel with the others
(`num_parallel_calls=AUTOTUNE`, order kept); batches are prefetched while the device trains.
`cache=True` keeps the training records (still encoded) in host memory after the first pass, so
later epochs read no files (worth it when the files sit on GCS or a slow disk; costs their size
in RAM: about 2.6 GB for DPED's 160K pairs of one phone). The dihedral augmentation runs in the
train step, on the device, where it is a free memory move, not on the host CPUs that decode.
bench/train_bench.py measures this pipeline's examples/s beside the train step's.
"""
from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from phone2dslr.trainer.preprocessing import DOMAIN, DSLR, PHONE

Batch = dict[str, tf.Tensor]

# Examples held by the shuffle buffer. It holds encoded bytes, not decoded images: a 100 px DPED
# patch pair is ~16 KB, so 2048 of them are ~32 MB of host memory per stream. Interleaving
# CYCLE_LENGTH files already puts patches of CYCLE_LENGTH different files side by side, so the
# buffer only has to mix within that window; 2048 >> a batch (DPED: 50) keeps consecutive batches
# nearly independent.
SHUFFLE_BUFFER = 2048
# Files read at once. Each open GZIP reader costs a few hundred KB; 16 files give 16 sources (and
# 16 photos when a file holds one photo's patches) within any 16 consecutive records.
CYCLE_LENGTH = 16


def expand(patterns: list[str]) -> list[str]:
    """TFX hands over file patterns (`.../Split-train/*`); tf.data needs the files themselves."""
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {', '.join(patterns)}")
    return files


def _raw_examples(files: list[str], raw_feature_spec: dict[str, Any], shuffle_files: bool = False,
                  seed: int = 0, cache: bool = False) -> tf.data.Dataset:
    """Parsed examples; with shuffle_files, files in a seeded order (reshuffled each epoch), interleaved.
    cache: the serialized records are read from memory after the first pass (in that pass's file
    order; the shuffle buffer downstream still reshuffles every epoch)."""
    names = expand(files)
    files_ds = tf.data.Dataset.from_tensor_slices(names)
    if shuffle_files:
        files_ds = files_ds.shuffle(len(names), seed=seed, reshuffle_each_iteration=True)
    ds = files_ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                             cycle_length=min(CYCLE_LENGTH, len(names)), block_length=1,
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    return ds.map(lambda s: tf.io.parse_single_example(s, raw_feature_spec),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _present(key: str) -> Callable[[dict[str, tf.Tensor]], tf.Tensor]:
    return lambda ex: tf.strings.length(tf.reshape(ex[key], [-1])[0]) > 0


def _transformed(ds: tf.data.Dataset, transform: Callable[[Any], Batch], batch: int) -> tf.data.Dataset:
    return ds.batch(batch, drop_remainder=True).map(transform, num_parallel_calls=tf.data.AUTOTUNE)


def paired_dataset(files: list[str], raw_feature_spec: dict[str, Any], transform: Callable[[Any], Batch],
                   batch: int, shuffle: bool, repeat: bool, seed: int = 0,
                   shuffle_buffer: int = SHUFFLE_BUFFER, cache: bool = False) -> tf.data.Dataset:
    """Batches {phone, dslr} of aligned pairs (what `transform` makes of them: [batch, H, W, 3] float32).

    files: TFRecord paths or glob patterns (GZIP tf.Examples); raises FileNotFoundError when none
    match. shuffle: seeded file order + interleave + `shuffle_buffer` (see the module docstring);
    without it the files are read in name order, interleaved, for a fixed validation stream.
    cache: hold the records in memory after the first pass (see the module docstring).
    """
    ds = _raw_examples(files, raw_feature_spec, shuffle_files=shuffle, seed=seed, cache=cache).filter(
        lambda ex: tf.logical_and(_present(PHONE)(ex), _present(DSLR)(ex)))
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = _transformed(ds, transform, batch).map(lambda t: {PHONE: t[PHONE], DSLR: t[DSLR]})
    return ds.prefetch(tf.data.AUTOTUNE)


def unpaired_dataset(files: list[str], raw_feature_spec: dict[str, Any], transform: Callable[[Any], Batch],
                     batch: int, seed: int = 0, shuffle_buffer: int = SHUFFLE_BUFFER,
                     cache: bool = False) -> tf.data.Dataset:
    """Batches {phone, dslr} whose two halves come from independently shuffled streams (seeds seed, seed+1).

    Each stream shuffles the file order, interleaves and shuffles as paired_dataset does, so the
    phone half and the DSLR half each mix photos, and neither follows the other. cache: as
    paired_dataset (each stream holds its own copy).
    """
    streams = []
    for key, stream_seed in ((PHONE, seed), (DSLR, seed + 1)):
        raw = _raw_examples(files, raw_feature_spec, shuffle_files=True, seed=stream_seed, cache=cache)
        s = raw.filter(_present(key)).shuffle(shuffle_buffer, seed=stream_seed, reshuffle_each_iteration=True)
        s = s.repeat()
        streams.append(_transformed(s, transform, batch).map(lambda t, k=key: t[k]))
    return tf.data.Dataset.zip(tuple(streams)).map(
        lambda a, b: {PHONE: a, DSLR: b}).prefetch(tf.data.AUTOTUNE)


def count_pairs(files: list[str], raw_feature_spec: dict[str, Any]) -> int:
    """How many paired examples a split holds (validation needs at least one batch)."""
    ds = _raw_examples(files, {k: v for k, v in raw_feature_spec.items() if k in (PHONE, DSLR, DOMAIN)})
    ds = ds.filter(lambda ex: tf.logical_and(_present(PHONE)(ex), _present(DSLR)(ex)))
    return int(ds.reduce(0, lambda n, _: n + 1))
