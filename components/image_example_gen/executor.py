"""Beam executor of the image ExampleGen: photo folders in, Examples and an IngestReport out.

It overrides `Do` rather than `GetInputSourceToExamplePTransform` because pairing joins two
folders and the split is decided per pair, not per record (transforms.py holds the Beam
transforms). Outputs follow the standard ExampleGen layout (`Split-<name>/data_tfrecord-*.gz`,
GZIP tf.Examples), so TFX components downstream read them unchanged. The Beam runner comes from
beam_pipeline_args only, so the DirectRunner, the portable runner with a worker pool, Dask,
Dataflow, Flink and Spark run the same code.
"""
from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.example_gen import write_split
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs

from phone2dslr import features as F
from phone2dslr.components.image_example_gen import report as report_lib
from phone2dslr.components.image_example_gen.layout import IngestError, IngestOptions, check_layout
from phone2dslr.components.image_example_gen.splitting import check_manifests
from phone2dslr.components.image_example_gen.transforms import IngestImages, WriteReport, WriteShuffledSplit

EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
INGEST_REPORT_KEY = "ingest_report"


class Executor(base_beam_executor.BaseBeamExecutor):
    """Writes the examples and the ingest report; fails (IngestError, one line) when too little is usable."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        options = IngestOptions.from_dict(exec_properties)
        folders = check_layout(options)  # before Beam starts: a missing folder is a one-line error
        photo_manifests = check_manifests(options)
        examples = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
        report = artifact_utils.get_single_instance(output_dict[INGEST_REPORT_KEY])
        examples.split_names = artifact_utils.encode_split_names(list(F.SPLITS))

        with self._make_beam_pipeline() as pipeline:
            outputs = pipeline | "IngestImages" >> IngestImages(  # pylint: disable=no-value-for-parameter
                options, folders, photo_manifests)
            for split in F.SPLITS:
                split_uri = artifact_utils.get_split_uri([examples], split)
                _ = outputs[split] | f"WriteSplit[{split}]" >> WriteShuffledSplit(  # pylint: disable=no-value-for-parameter
                    split_uri, options.seed)
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
            raise IngestError(keep_failed_report(report.uri, summary["error"]))


FAILED_REPORT_DIR = "failed_ingest_report"


def keep_failed_report(report_uri: str, error: str) -> str:
    """Copies the ingest report of a failing run where it outlives the failure; returns `error`
    pointing there.

    TFX removes a failed execution's output folders, so the rejects.jsonl and summary.json that
    explain why ingestion stopped would vanish with report_uri. They are copied to
    `<component folder>/failed_ingest_report/<execution id>/` (beside the artifact folders), which
    no runner cleans up; a copy that fails leaves the message as it was.
    """
    target = os.path.join(os.path.dirname(os.path.dirname(report_uri.rstrip("/"))), FAILED_REPORT_DIR,
                          os.path.basename(report_uri.rstrip("/")))
    try:
        tf.io.gfile.makedirs(target)
        for name in tf.io.gfile.listdir(report_uri):
            tf.io.gfile.copy(os.path.join(report_uri, name), os.path.join(target, name), overwrite=True)
    except (OSError, tf.errors.OpError):
        return error
    return error.replace(report_uri.rstrip("/"), target)
