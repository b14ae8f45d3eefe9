"""Read back what a local run produced (from ML Metadata) and say it in a few lines."""
from __future__ import annotations

import json
import os
from typing import Any

from pipeline.config import PipelineConfig

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
)


def one_line(error: BaseException) -> str:
    """The most specific message in an exception chain, on one line.

    Our own errors (IngestError, ConfigError, ...) are raised deep inside executors and reach the
    runner wrapped; their message is the one that tells a user what to fix.
    """
    chain: list[BaseException] = []
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    ours = [x for x in chain if type(x).__module__.split(".")[0] in ("components", "trainer", "export", "pipeline")]
    chosen = ours[-1] if ours else chain[-1]
    text = " ".join(str(chosen).split()) or type(chosen).__name__
    return f"{type(chosen).__name__}: {text}"[:2000]


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
    return "\n".join(lines)


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
