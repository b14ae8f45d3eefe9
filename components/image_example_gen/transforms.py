"""The image ExampleGen's Beam transforms: list folders, pair by name, decode, split, write.

The executor (executor.py) wires them into the pipeline of a TFX run. They live apart from it
because a worker imports the module of every transform it unpickles: this one needs Beam,
TensorFlow and the ingestion modules, not TFX's component packages (`tfx.components` imports every
standard component, about 4 s of CPU per worker process here, on every engine).

Pairing joins two folders and the split is decided per pair, not per record. Photo manifests
(splitting.py) join the files by name, so the split keeps every photo and scene whole.

Writing a split: TFX's WriteSplit keeps the order examples arrive in, and they arrive grouped (one
unit's patches one after another, units in listing order), so a reader streaming the files into a
bounded shuffle buffer would train on batches from a handful of photos. Here every example gets a
key, a hash of the seed and its bytes, that picks its shard and its place within the shard: each
shard is a random sample of the split in random order, the same bytes for the same input and seed
on every runner.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os

import apache_beam as beam
import tensorflow as tf

from phone2dslr import features as F
from phone2dslr.components.image_example_gen import report as report_lib
from phone2dslr.components.image_example_gen.layout import (TEST_GROUP, TRAIN_GROUP, IngestOptions, Listing, Source,
                                                  layout_extras, list_source, make_unit, stable_int)
from phone2dslr.components.image_example_gen.listing import ignored_detail
from phone2dslr.components.image_example_gen.reading import process_unit
from phone2dslr.components.image_example_gen.splitting import Manifest, eval_cutoff, read_manifest, split_key

METRICS_NAMESPACE = "image_example_gen"
REJECTS, COUNTS, IGNORED, DISTINCT = "rejects", "counts", "ignored", "distinct"
FILE_PREFIX = "data_tfrecord"  # tfx.components.example_gen.write_split.DEFAULT_FILE_NAME
# A shard is sorted in one worker's memory; 64 MiB (about 4,000 DPED patch pairs of ~16 KB) is
# small for a worker and large enough that a 160k-patch DPED phone makes tens of files, not thousands.
TARGET_SHARD_BYTES = 64 << 20


def _count(counts: dict[str, int]) -> None:
    for name, value in counts.items():
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, name).inc(value)


def _listed(root: str, listing: Listing, split: str):
    """A listing's images, then its ignored entries as report records (IGNORED) and its counts (COUNTS)."""
    yield from listing.images
    counts = collections.Counter({"names.escaped": listing.escaped} if listing.escaped else {})
    for entry in listing.ignored:
        counts["files.ignored"] += 1
        counts[f"ignored.{entry.kind}"] += 1
        yield beam.pvalue.TaggedOutput(IGNORED, {"path": os.path.join(root, entry.rel), "split": split,
                                                 "reason": "ignored", "detail": ignored_detail(entry)})
    _count(counts)
    yield beam.pvalue.TaggedOutput(COUNTS, dict(counts))


class _ListFolder(beam.DoFn):
    """A layout folder (Source) -> its images to pair and ignored entries; None -> the entries beside
    the layout's folders (layout.layout_extras)."""

    def __init__(self, options: IngestOptions):
        self._options = options

    def process(self, source: Source | None):
        root = self._options.input_base
        if source is None:
            yield from _listed(root, layout_extras(self._options), "none")
            return
        split = F.TEST if source.group == TEST_GROUP else "train/eval"
        yield from _listed(root, list_source(root, source, self._options.recursive), split)


class _ReadManifest(beam.DoFn):
    """Manifest rows joined to units by GroupByName; row counts (and bad rows) to COUNTS."""

    def __init__(self, root: str):
        self._root = root

    def process(self, manifest: Manifest):
        counts = collections.Counter()
        for row in read_manifest(self._root, manifest):
            counts["manifest.rows"] += 1
            if row is None:
                counts["manifest.bad_rows"] += 1
            else:
                yield row
        _count(counts)
        yield beam.pvalue.TaggedOutput(COUNTS, dict(counts))


class _EvalCutoff(beam.CombineFn):
    """splitting.eval_cutoff over the distinct hashes of the training groups' split keys."""

    def __init__(self, eval_percent: int):
        self._eval_percent = eval_percent

    def create_accumulator(self):
        return set()

    def add_input(self, acc, value):
        acc.add(value)
        return acc

    def merge_accumulators(self, accs):
        return set().union(*accs)

    def extract_output(self, acc):
        return eval_cutoff(acc, self._eval_percent)


class _ProcessUnit(beam.DoFn):
    def __init__(self, options: IngestOptions):
        self._options = options

    def process(self, unit, test_pairs: int, cutoff: int):
        result = process_unit(unit, self._options, test_has_pairs=test_pairs > 0, eval_cutoff=cutoff)
        for split, example in result.examples:
            yield beam.pvalue.TaggedOutput(split, example)
        for record in result.rejects:
            yield beam.pvalue.TaggedOutput(REJECTS, record)
        for item in result.distinct:
            yield beam.pvalue.TaggedOutput(DISTINCT, item)
        _count(result.counts)
        yield beam.pvalue.TaggedOutput(COUNTS, dict(result.counts))


def _distinct_count(item: tuple[str, str]) -> dict[str, int]:
    counts = {item[0]: 1}
    _count(counts)
    return counts


class _SumCounts(beam.CombineFn):
    def create_accumulator(self):
        return collections.Counter()

    def add_input(self, acc, counts):
        acc.update(counts)
        return acc

    def merge_accumulators(self, accs):
        total = collections.Counter()
        for acc in accs:
            total.update(acc)
        return total

    def extract_output(self, acc):
        return dict(acc)


@beam.ptransform_fn
def IngestImages(pipeline: beam.Pipeline, options: IngestOptions,  # pylint: disable=invalid-name
                 folders: list[Source], photo_manifests: list[Manifest] | None = None) -> dict[str, beam.PCollection]:
    """Serialized tf.Examples per split, reject records (dicts) and per-unit count dicts.

    photo_manifests (splitting.check_manifests) name each file's source photo and scene; the
    train/eval split is decided per scene (else photo, else file) over all groups at once.
    """
    listed = (pipeline
              | "Folders" >> beam.Create([*folders, None])  # None: the entries beside the layout's folders
              | "ListFolders" >> beam.ParDo(_ListFolder(options)).with_outputs(IGNORED, COUNTS, main="images"))
    rows = (pipeline
            | "Manifests" >> beam.Create(photo_manifests or [])
            | "ReadManifests" >> beam.ParDo(_ReadManifest(options.input_base)).with_outputs(COUNTS, main="rows"))
    units = ((listed.images, rows.rows)
             | "FilesAndRows" >> beam.Flatten()
             | "GroupByName" >> beam.GroupByKey()
             | "MakeUnits" >> beam.MapTuple(make_unit))
    test_pairs = (units
                  | "TestPairs" >> beam.Filter(lambda u: u.group == TEST_GROUP and u.phone and u.dslr)
                  | "CountTestPairs" >> beam.combiners.Count.Globally())
    cutoff = (units
              # Eval is drawn from units with a phone image (see splitting.split_of).
              | "TrainGroups" >> beam.Filter(lambda u: u.group == TRAIN_GROUP and bool(u.phone))
              | "GroupHashes" >> beam.Map(lambda u: stable_int(split_key(u)))
              | "EvalCutoff" >> beam.CombineGlobally(_EvalCutoff(options.eval_percent)))
    out = (units
           | "DecodeAndCut" >> beam.ParDo(_ProcessUnit(options), test_pairs=beam.pvalue.AsSingleton(test_pairs),
                                          cutoff=beam.pvalue.AsSingleton(cutoff))
           .with_outputs(*F.SPLITS, REJECTS, COUNTS, DISTINCT))
    distinct_counts = (out[DISTINCT]
                       | "DistinctPhotos" >> beam.Distinct()
                       | "PhotoCounts" >> beam.Map(_distinct_count))
    result = {split: out[split] for split in F.SPLITS}
    result[REJECTS] = (out[REJECTS], listed[IGNORED]) | "AllRejects" >> beam.Flatten()
    result[COUNTS] = ((out[COUNTS], listed[COUNTS], distinct_counts, rows[COUNTS])
                      | "AllCounts" >> beam.Flatten())
    return result


@beam.ptransform_fn
def WriteReport(outputs: dict[str, beam.PCollection], options: IngestOptions,  # pylint: disable=invalid-name
                report_uri: str) -> beam.PCollection:
    """rejects.jsonl (one line per set-aside file), summary.json and summary.txt under report_uri."""
    _ = (outputs[REJECTS]
         | "RejectsToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
         | "WriteRejects" >> beam.io.WriteToText(os.path.join(report_uri, report_lib.REJECTS_FILE),
                                                 num_shards=1, shard_name_template=""))
    return (outputs[COUNTS]
            | "SumCounts" >> beam.CombineGlobally(_SumCounts())
            | "WriteSummary" >> beam.Map(report_lib.write_summary, options, report_uri))


def order_key(seed: int, example: bytes) -> int:
    """A 64-bit key from the seed and the serialized example (SHA-256): its shard and its place."""
    digest = hashlib.sha256(seed.to_bytes(8, "big", signed=True) + example).digest()
    return int.from_bytes(digest[:8], "big")


def shard_count(total_bytes: int, target: int = TARGET_SHARD_BYTES) -> int:
    """Number of shards for a split of `total_bytes` serialized bytes: ceil(total / target), at least 1."""
    return max(1, -(-total_bytes // target))


def shard_path(split_dir: str, index: int, count: int) -> str:
    """`<split_dir>/data_tfrecord-<index>-of-<count>.gz` (5-digit, zero-padded), TFX's shard naming."""
    return os.path.join(split_dir, f"{FILE_PREFIX}-{index:05d}-of-{count:05d}.gz")


def write_shard(split_dir: str, index: int, count: int, keyed: list[tuple[int, bytes]]) -> int:
    """Writes one shard's examples in key order (ties, i.e. identical examples, by bytes); returns `index`.

    Writing the final path directly is safe under Beam retries: a retry writes the same bytes.
    """
    tf.io.gfile.makedirs(split_dir)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(shard_path(split_dir, index, count), options) as writer:
        for _, example in sorted(keyed):
            writer.write(example)
    return index


@beam.ptransform_fn
def WriteShuffledSplit(examples: beam.PCollection, split_dir: str, seed: int,  # pylint: disable=invalid-name
                       target_shard_bytes: int = TARGET_SHARD_BYTES) -> beam.PCollection:
    """Serialized tf.Examples -> `split_dir/data_tfrecord-*.gz`; yields the shard indices written.

    Every shard 0..count-1 exists afterwards (an empty split gets one empty file), as TFX's own
    writer leaves them, so readers that glob the folder always find the split.
    """
    total = (examples
             | "Sizes" >> beam.Map(len)
             | "TotalBytes" >> beam.CombineGlobally(sum))
    count = total | "ShardCount" >> beam.Map(shard_count, target_shard_bytes)

    def keyed(example: bytes, n: int) -> tuple[int, tuple[int, bytes]]:
        key = order_key(seed, example)
        return key % n, (key, example)

    written = (examples
               | "Key" >> beam.Map(keyed, beam.pvalue.AsSingleton(count))
               | "ByShard" >> beam.GroupByKey()
               | "WriteShards" >> beam.Map(lambda shard, n: write_shard(split_dir, shard[0], n, list(shard[1])),
                                           beam.pvalue.AsSingleton(count)))

    def write_empty(n: int, done: list[int]) -> list[int]:
        return [write_shard(split_dir, i, n, []) for i in range(n) if i not in set(done)]

    empty = (count
             | "EmptyShards" >> beam.FlatMap(write_empty, beam.pvalue.AsList(written)))
    return (written, empty) | "AllShards" >> beam.Flatten()
