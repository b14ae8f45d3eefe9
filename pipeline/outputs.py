"""Read back what a local run produced (from ML Metadata) and say it in a few lines."""
from __future__ import annotations

import json
import os
from typing import Any

from phone2dslr.config import PipelineConfig

# (producing component, output key, what a person calls it)
_REPORTED = (
    ("ImageExampleGen", "examples", "TFRecords"),
    ("ImageExampleGen", "ingest_report", "ingest report"),
    ("StatisticsGen", "statistics", "statistics"),
    ("SchemaGen", "schema", "schema"),
    ("ExampleValidator", "anomalies", "anomalies"),
    ("Transform", "transform_graph", "transform graph"),
    ("Trainer", "model", "model"),
    ("Trainer", "model_run", "TensorBoard logs"),
    ("Evaluator", "evaluation", "evaluation"),
    ("TFLiteExport", "tflite_models", "TFLite checks"),
    ("RunReport", "report", "report"),
    ("ModelPusher", "pushed_model", "push record"),
)


def latest_artifacts(config: PipelineConfig) -> dict[tuple[str, str], Any]:
    """Latest artifact of each reported (component, output) in the local MLMD database.

    Artifacts are told apart by their place under the pipeline root, which TFX lays out as
    <root>/<component>/<output>/<execution id>; cached runs reuse those artifacts.
    """
    from ml_metadata.metadata_store import metadata_store
    from tfx import v1 as tfx

    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    root = os.path.abspath(config.pipeline_root)
    found = {}
    for artifact in store.get_artifacts():
        rel = os.path.relpath(os.path.abspath(artifact.uri), root).split(os.sep)
        if len(rel) == 3 and (rel[0], rel[1]) in {(c, o) for c, o, _ in _REPORTED}:
            key = (rel[0], rel[1])
            if key not in found or artifact.id > found[key].id:
                found[key] = artifact
    return found


def summary(config: PipelineConfig) -> str:
    """Paths of the run's artifacts, the ingest counts and anything the validator flagged."""
    artifacts = latest_artifacts(config)
    lines = ["", "== phone2dslr run finished =="]
    for component, output, label in _REPORTED:
        if (component, output) in artifacts:
            lines.append(f"{label:>16}: {artifacts[component, output].uri}")
    report = artifacts.get(("ImageExampleGen", "ingest_report"))
    if report is not None:
        summary_file = os.path.join(report.uri, "summary.json")
        if os.path.exists(summary_file):
            with open(summary_file, encoding="utf-8") as f:
                counts = json.load(f)
            lines.append(f"{'examples':>16}: {json.dumps(counts.get('examples', {}), sort_keys=True)}")
            rejects = counts.get("rejects", {})
            lines.append(f"{'set aside':>16}: {sum(rejects.values())} {json.dumps(rejects, sort_keys=True)} "
                         f"(one line per file in {os.path.join(report.uri, 'rejects.jsonl')})")
    anomalies = artifacts.get(("ExampleValidator", "anomalies"))
    if anomalies is not None:
        lines.append(f"{'data anomalies':>16}: {_anomaly_count(anomalies.uri)}")
    lines.extend(_verdict(artifacts))
    return "\n".join(lines)


# The overall metrics printed, as TFMA stores them (pipeline/evaluation.py): label, model's metric,
# phone input's metric, format, note. Older evaluations lack the pooled PSNR and MS-SSIM lines.
_HEADLINE = (
    ("test PSNR", "psnr", "input_psnr", "{:.2f} dB", " (mean of per-image PSNR)"),
    ("test PSNR pooled", "psnr_pooled", "psnr_pooled_input", "{:.2f} dB", " (PSNR of the MSE over all pixels)"),
    ("test SSIM", "ssim", "input_ssim", "{:.4f}", ""),
    ("test MS-SSIM", "ms_ssim", "ms_ssim_input", "{:.4f}", " (scales as trainer/metrics.py)"),
)


def _verdict(artifacts: dict[tuple[str, str], Any]) -> list[str]:
    """Blessing, the headline metrics, and where the shipped files went."""
    lines = []
    evaluation = artifacts.get(("Evaluator", "evaluation"))
    if evaluation is not None:
        metrics = overall_metrics(evaluation.uri)
        blessed = os.path.exists(os.path.join(os.path.dirname(os.path.dirname(evaluation.uri)), "blessing",
                                              os.path.basename(evaluation.uri), "BLESSED"))
        lines.append(f"{'blessing':>16}: {'BLESSED' if blessed else 'NOT BLESSED'}")
        for label, model, phone, form, note in _HEADLINE:
            if model in metrics or phone in metrics:
                lines.append(f"{label:>16}: model {form.format(metrics.get(model, float('nan')))}, "
                             f"phone input {form.format(metrics.get(phone, float('nan')))}{note}")
    if ("RunReport", "report") in artifacts:
        lines.append(f"{'HTML report':>16}: {os.path.join(artifacts['RunReport', 'report'].uri, 'index.html')}")
    pushed = artifacts.get(("ModelPusher", "pushed_model"))
    if pushed is not None and pushed.custom_properties.get("pushed") and \
            pushed.custom_properties["pushed"].int_value:
        destination = pushed.custom_properties["pushed_destination"].string_value
        already = pushed.custom_properties.get("already_pushed")
        # A cached model re-run: say that the version shown is the earlier push, not a new one.
        note = (f" (already pushed: version {os.path.basename(destination)} holds the same files; "
                "nothing new copied)" if already is not None and already.int_value else "")
        lines.append(f"{'pushed model':>16}: {destination}{note}")
        variants = pushed.custom_properties.get("tflite_variants")
        if variants is not None and variants.string_value:
            for variant in variants.string_value.split(","):
                lines.append(f"{'pushed TFLite':>16}: {os.path.join(destination, 'tflite', variant + '.tflite')}")
    elif evaluation is not None:
        lines.append(f"{'pushed':>16}: nothing (model not blessed)")
    return lines


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The candidate's overall-slice metric values of a TFMA evaluation, by metric name.

    TFMA names class-based metrics after the class (InputPSNR -> input_psnr) and also stores the
    baseline's values and the differences; only the candidate's own values are returned.
    """
    import tensorflow_model_analysis as tfma

    for metrics in tfma.load_metrics(evaluation_uri):
        if not metrics.slice_key.single_slice_keys:
            return {kv.key.name: kv.value.double_value.value for kv in metrics.metric_keys_and_values
                    if kv.value.HasField("double_value") and not kv.key.is_diff
                    and kv.key.model_name in ("", "candidate")}
    return {}


def _anomaly_count(uri: str) -> str:
    """Count anomalies per split from ExampleValidator's SchemaDiff.pb files."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    parts = []
    for split_dir in sorted(os.listdir(uri)) if os.path.isdir(uri) else []:
        path = os.path.join(uri, split_dir, "SchemaDiff.pb")
        if os.path.exists(path):
            a = anomalies_pb2.Anomalies()
            with open(path, "rb") as f:
                a.ParseFromString(f.read())
            parts.append(f"{split_dir.removeprefix('Split-')}={len(a.anomaly_info)}")
    return ", ".join(parts) or "none reported"
