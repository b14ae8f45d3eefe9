"""Training batches mix photos: shuffled file order + interleaved reads + shuffle buffer, all seeded.

The stand-in data is the worst case the input pipeline must handle: every TFRecord file holds the
patches of one photo, one after another. The examples carry no pixels; "phone" and "dslr" hold
b"<photo>/<patch>" strings and the transform passes them through, so a batch says which photo
each of its examples came from.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from phone2dslr.trainer import data

PHOTOS, PATCHES, BATCH, BUFFER = 40, 100, 8, 64
SPEC = {key: tf.io.FixedLenFeature([], tf.string, default_value=b"") for key in ("phone", "dslr", "domain")}


def _example(phone: bytes, dslr: bytes) -> bytes:
    feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
               for k, v in (("phone", phone), ("dslr", dslr), ("domain", b"paired"))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory) -> list[str]:
    """One GZIP file per photo, its patches in order."""
    root = tmp_path_factory.mktemp("records")
    files = []
    for photo in range(PHOTOS):
        path = str(root / f"photo-{photo:03d}.gz")
        with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as w:
            for patch in range(PATCHES):
                name = f"{photo}/{patch}".encode()
                w.write(_example(name, name))
        files.append(path)
    return files


def _identity(raw):
    return {"phone": tf.reshape(raw["phone"], [-1]), "dslr": tf.reshape(raw["dslr"], [-1])}


def _photos(batch: np.ndarray) -> set[str]:
    return {s.decode().split("/")[0] for s in batch}


def _batches(ds: tf.data.Dataset, n: int, key: str = "phone") -> list[np.ndarray]:
    return [b[key].numpy() for b in ds.take(n)]


def _sequential(files: list[str]) -> tf.data.Dataset:
    """The reading this replaces: files one after another into the same shuffle buffer."""
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").map(lambda s: tf.io.parse_single_example(s, SPEC))
    return ds.shuffle(BUFFER, seed=0).batch(BATCH).map(_identity)


def test_paired_batches_draw_from_many_photos(photo_files):
    ds = data.paired_dataset(photo_files, SPEC, _identity, BATCH, shuffle=True, repeat=True, seed=0,
                             shuffle_buffer=BUFFER)
    n = PHOTOS * PATCHES // BATCH
    mixed = np.mean([len(_photos(b)) for b in _batches(ds, n)])
    sequential = np.mean([len(_photos(b)) for b in _batches(_sequential(photo_files), n)])
    # Sequential reading fills the buffer from ~1 photo (BUFFER < PATCHES) plus stragglers of the
    # previous ones: ~2.4 photos per batch. Interleaving 16 files fills it from 16 photos: 8 draws
    # from 16 equal shares give 16 * (1 - (15/16) ** 8) ~ 6.4 distinct.
    assert sequential < 3.0
    assert mixed > 5.5 and mixed > 2 * sequential
    print(f"distinct photos per batch of {BATCH}: sequential {sequential:.2f}, interleaved {mixed:.2f}")
    seen = {p for b in _batches(ds, n) for p in _photos(b)}
    assert len(seen) == PHOTOS  # one pass over the data reaches every file


def test_same_seed_same_batches_other_seed_other_batches(photo_files):
    def run(seed: int) -> list[np.ndarray]:
        ds = data.paired_dataset(photo_files, SPEC, _identity, BATCH, shuffle=True, repeat=True, seed=seed,
                                 shuffle_buffer=BUFFER)
        return _batches(ds, PHOTOS * PATCHES // BATCH + 20)  # into the second epoch (files reshuffled)

    first, again, other = run(3), run(3), run(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_epochs_read_the_files_in_new_orders(photo_files):
    ds = data.paired_dataset(photo_files, SPEC, _identity, 1, shuffle=True, repeat=True, seed=0, shuffle_buffer=1)
    stream = [s.decode().split("/")[0] for b in _batches(ds, 2 * PHOTOS * PATCHES) for s in b]
    first, second = stream[:PHOTOS * PATCHES], stream[PHOTOS * PATCHES:]
    # With no buffer left to shuffle, the first CYCLE_LENGTH records name the files opened first.
    opened = [first[:data.CYCLE_LENGTH], second[:data.CYCLE_LENGTH]]
    assert len(set(opened[0])) == data.CYCLE_LENGTH and opened[0] != opened[1]
    assert sorted(first) == sorted(second)  # each epoch is every example once


def test_validation_stream_is_fixed(photo_files):
    def run() -> list[np.ndarray]:
        ds = data.paired_dataset(photo_files, SPEC, _identity, BATCH, shuffle=False, repeat=True)
        return _batches(ds, 10)

    assert all(np.array_equal(a, b) for a, b in zip(run(), run()))


def test_unpaired_streams_each_mix_photos_and_differ(photo_files):
    ds = data.unpaired_dataset(photo_files, SPEC, _identity, BATCH, seed=0, shuffle_buffer=BUFFER)
    batches = list(ds.take(50))
    for key in ("phone", "dslr"):
        assert np.mean([len(_photos(b[key].numpy())) for b in batches]) > 5.5
    assert not all(np.array_equal(b["phone"].numpy(), b["dslr"].numpy()) for b in batches)
    again = list(data.unpaired_dataset(photo_files, SPEC, _identity, BATCH, seed=0, shuffle_buffer=BUFFER).take(50))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for a, b in zip(batches, again) for k in ("phone", "dslr"))


def test_input_cache_gives_the_same_batches_and_reads_no_files_after_the_first_pass(tmp_path):
    """train.input_cache: the first pass is the uncached stream; later epochs come from memory."""
    files = []
    for photo in range(4):
        path = str(tmp_path / f"photo-{photo}.gz")
        with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as w:
            for patch in range(8):
                w.write(_example(f"{photo}/{patch}".encode(), b"x"))
        files.append(path)
    epoch = 4 * 8 // 4  # batches of 4 in one pass over the 32 examples

    def stream(cache: bool) -> tf.data.Dataset:
        return data.paired_dataset(files, SPEC, _identity, 4, shuffle=True, repeat=True, seed=3,
                                   shuffle_buffer=8, cache=cache)

    plain, cached = iter(stream(False)), iter(stream(True))
    for _ in range(epoch):  # the first pass: identical
        np.testing.assert_array_equal(next(cached)["phone"].numpy(), next(plain)["phone"].numpy())
    for path in files:  # gone: an uncached second epoch would fail to open them
        tf.io.gfile.remove(path)
    second = [next(cached)["phone"].numpy() for _ in range(epoch)]
    assert sorted(s for b in second for s in b) == sorted(f"{p}/{i}".encode() for p in range(4) for i in range(8))
    with pytest.raises(tf.errors.NotFoundError):
        for _ in range(2 * epoch):
            next(plain)
