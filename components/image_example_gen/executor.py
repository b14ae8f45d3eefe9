"""Beam executor of the image ExampleGen: list folders, pair by name, decode, split, write.

It overrides `Do` rather than `GetInputSourceToExamplePTransform` because pairing joins two
folders and the split is decided per pair, not per record. Outputs follow the standard ExampleGen
layout (`Split-<name>/data_tfrecord-*.gz`, GZIP tf.Examples), so TFX components downstream read
them unchanged. The Beam runner comes from beam_pipeline_args only, so DirectRunner, Dataflow,
Flink and Spark run the same code.
"""
from __future__ import annotations

import collections
import json
import os
from typing import Any

import apache_beam as beam
from absl import logging
from tfx import types
from tfx.components.example_gen import write_split
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs

from phone2dslr import features as F
from phone2dslr.components.image_example_gen import report as report_lib
from phone2dslr.components.image_example_gen.layout import (TEST_GROUP, IngestError, IngestOptions, Source, check_layout,
                                                  list_source, make_unit)
from phone2dslr.components.image_example_gen.reading import process_unit

EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
INGEST_REPORT_KEY = "ingest_report"
METRICS_NAMESPACE = "image_example_gen"
REJECTS, COUNTS, IGNORED = "rejects", "counts", "ignored"


def _count(counts: dict[str, int]) -> None:
    for name, value in counts.items():
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, name).inc(value)


class _ListFolder(beam.DoFn):
    def __init__(self, root: str):
        self._root = root

    def process(self, source: Source):
        images, others = list_source(self._root, source)
        yield from images
        for rel in others:
            yield beam.pvalue.TaggedOutput(IGNORED, (source, rel))


def _ignored_record(root: str, source: Source, rel: str) -> dict:
    name = rel.rsplit("/", 1)[-1]
    detail = "hidden file" if name.startswith(".") else "not an image file extension"
    split = F.TEST if source.group == TEST_GROUP else "train/eval"
    return {"path": os.path.join(root, rel), "split": split, "reason": "ignored", "detail": detail}


def _ignored_count(_: dict) -> dict[str, int]:
    counts = {"files.ignored": 1}
    _count(counts)
    return counts


class _ProcessUnit(beam.DoFn):
    def __init__(self, options: IngestOptions):
        self._options = options

    def process(self, unit, test_pairs: int):
        result = process_unit(unit, self._options, test_has_pairs=test_pairs > 0)
        for split, example in result.examples:
            yield beam.pvalue.TaggedOutput(split, example)
        for record in result.rejects:
            yield beam.pvalue.TaggedOutput(REJECTS, record)
        _count(result.counts)
        yield beam.pvalue.TaggedOutput(COUNTS, dict(result.counts))


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
                 folders: list[Source]) -> dict[str, beam.PCollection]:
    """Serialized tf.Examples per split, reject records (dicts) and per-unit count dicts."""
    listed = (pipeline
              | "Folders" >> beam.Create(folders)
              | "ListFolders" >> beam.ParDo(_ListFolder(options.input_base)).with_outputs(IGNORED, main="images"))
    units = (listed.images
             | "GroupByName" >> beam.GroupByKey()
             | "MakeUnits" >> beam.MapTuple(make_unit))
    test_pairs = (units
                  | "TestPairs" >> beam.Filter(lambda u: u.group == TEST_GROUP and u.phone and u.dslr)
                  | "CountTestPairs" >> beam.combiners.Count.Globally())
    out = (units
           | "DecodeAndCut" >> beam.ParDo(_ProcessUnit(options), test_pairs=beam.pvalue.AsSingleton(test_pairs))
           .with_outputs(*F.SPLITS, REJECTS, COUNTS))
    ignored = listed[IGNORED] | "IgnoredRecords" >> beam.MapTuple(
        lambda source, rel: _ignored_record(options.input_base, source, rel))
    ignored_counts = ignored | "IgnoredCounts" >> beam.Map(_ignored_count)
    result = {split: out[split] for split in F.SPLITS}
    result[REJECTS] = (out[REJECTS], ignored) | "AllRejects" >> beam.Flatten()
    result[COUNTS] = (out[COUNTS], ignored_counts) | "AllCounts" >> beam.Flatten()
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


class Executor(base_beam_executor.BaseBeamExecutor):
    """Writes the examples and the ingest report; fails (IngestError, one line) when too little is usable."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        options = IngestOptions.from_dict(exec_properties)
        folders = check_layout(options)  # before Beam starts: a missing folder is a one-line error
        examples = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
        report = artifact_utils.get_single_instance(output_dict[INGEST_REPORT_KEY])
        examples.split_names = artifact_utils.encode_split_names(list(F.SPLITS))

        with self._make_beam_pipeline() as pipeline:
            outputs = pipeline | "IngestImages" >> IngestImages(options, folders)  # pylint: disable=no-value-for-parameter
            for split in F.SPLITS:
                _ = outputs[split] | f"WriteSplit[{split}]" >> write_split.WriteSplit(  # pylint: disable=no-value-for-parameter
                    artifact_utils.get_split_uri([examples], split), example_gen_pb2.FORMAT_TFRECORDS_GZIP)
            _ = outputs | "WriteReport" >> WriteReport(options, report.uri)  # pylint: disable=no-value-for-parameter

        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))
        summary = report_lib.read_summary(report.uri)
        for split, n in summary["examples"].items():
            report.set_int_custom_property(f"examples_{split}", n)
        report.set_int_custom_property("files_rejected", summary["files"]["rejected"])
        report.set_float_custom_property("reject_fraction", summary["reject_fraction"])
        report.set_string_custom_property("status", summary["status"])
        logging.info("Ingest report:\n%s", report_lib.summary_text(summary))
        if summary["status"] != "ok":
            raise IngestError(summary["error"])
