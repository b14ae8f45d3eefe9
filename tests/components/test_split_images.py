"""split_images: the seeded sample the TFLite checks, int8 calibration and the run report read."""
from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from phone2dslr import features as F
from phone2dslr.components import split_images

N_FILES, PER_FILE = 3, 100  # 300 records; every 5th is DSLR-only (no phone image)


def _png(index: int) -> bytes:
    """A 2x2 image whose red and green channels spell `index` (index = 256 * g + r)."""
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = index % 256, index // 256
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()


def _example(phone: bytes, dslr: bytes) -> bytes:
    feature = {F.PHONE: phone, F.DSLR: dslr, F.SOURCE: b"iphone"}
    return tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])) for k, v in feature.items()})).SerializeToString()


def _split(tmp_path, broken_every: int = 0) -> str:
    """Every 5th example DSLR-only; with broken_every, every such example an undecodable phone image."""
    index = 0
    for f in range(N_FILES):
        with tf.io.TFRecordWriter(str(tmp_path / f"data_tfrecord-{f:05d}-of-{N_FILES:05d}.gz"),
                                  tf.io.TFRecordOptions(compression_type="GZIP")) as w:
            for _ in range(PER_FILE):
                phone = b"" if index % 5 == 4 else _png(index)
                if broken_every and index % broken_every == 0:
                    phone = b"not an image"
                w.write(_example(phone, _png(index)))
                index += 1
    return str(tmp_path)


def test_positions_are_one_per_stratum_sorted_and_seeded():
    n, limit = 1000, 16
    positions = split_images.sample_positions(n, limit, seed=0)
    assert len(positions) == limit
    for i, p in enumerate(positions):  # restated: stratum i is [floor(i n / limit), floor((i + 1) n / limit))
        assert i * n // limit <= p < (i + 1) * n // limit
    assert positions == split_images.sample_positions(n, limit, seed=0)
    assert positions != split_images.sample_positions(n, limit, seed=1)
    assert split_images.sample_positions(5, 16, seed=0) == [0, 1, 2, 3, 4]
    assert split_images.sample_positions(5, 0, seed=0) == []


def test_sample_spans_the_split_and_is_reproducible(tmp_path):
    split = _split(tmp_path)
    n = N_FILES * PER_FILE
    samples, skipped = split_images.read_samples(split, 10, seed=0)
    indices = [s.index for s in samples]
    assert len(samples) == 10 and indices == sorted(indices)
    assert indices[0] < n // 10 and indices[-1] >= n - n // 10  # not the first 10: start to end
    assert len({i // PER_FILE for i in indices}) == N_FILES  # every file contributes
    for s in samples:  # each sample is the example at its index, phone and DSLR alike
        red, green = np.round(s.phone[0, 0, :2] * 255).astype(int)
        assert s.index % 5 != 4 and 256 * green + red == s.index
        assert s.dslr is not None and np.array_equal(s.dslr, s.phone)
    assert skipped == {"no_phone": n // 5}
    again, _ = split_images.read_samples(split, 10, seed=0)
    other, _ = split_images.read_samples(split, 10, seed=1)
    assert [s.index for s in again] == indices and [s.index for s in other] != indices


def test_small_or_empty_splits(tmp_path):
    split = _split(tmp_path)
    everything, _ = split_images.read_samples(split, 1000)
    assert len(everything) == N_FILES * PER_FILE * 4 // 5
    assert split_images.read_samples(str(tmp_path / "nothing"), 5) == ([], {})


def test_undecodable_examples_are_counted_and_replaced(tmp_path):
    split = _split(tmp_path, broken_every=7)
    samples, skipped = split_images.read_samples(split, 40, seed=0)
    assert len(samples) == 40 and len({s.index for s in samples}) == 40
    assert all(s.index % 7 != 0 for s in samples) and skipped["undecodable"] >= 1
    assert [s.index for s in split_images.read_samples(split, 40, seed=0)[0]] == [s.index for s in samples]
