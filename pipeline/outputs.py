"""Read back what a local run produced (from ML Metadata) and say it in a few lines."""
from __future__ import annotations

import json
import os
from typing import Any

from pipeline.config import PipelineConfig

# (MLMD artifact type, what a person calls it)
_REPORTED = (
    ("Examples", "TFRecords"),
    ("IngestReport", "ingest report"),
    ("ExampleStatistics", "statistics"),
    ("Schema", "schema"),
    ("ExampleAnomalies", "anomalies"),
    ("TransformGraph", "transform graph"),
    ("Model", "model"),
    ("ModelRun", "TensorBoard logs"),
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


def latest_artifacts(metadata_path: str) -> dict[str, Any]:
    """Latest artifact of each reported type in the local MLMD database."""
    from ml_metadata.metadata_store import metadata_store
    from tfx import v1 as tfx

    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))
    found = {}
    for type_name, _ in _REPORTED:
        artifacts = store.get_artifacts_by_type(type_name)
        if artifacts:
            found[type_name] = max(artifacts, key=lambda a: (a.create_time_since_epoch, a.id))
    return found


def summary(config: PipelineConfig) -> str:
    """Paths of the run's artifacts, the ingest counts and anything the validator flagged."""
    artifacts = latest_artifacts(config.metadata_path)
    lines = ["", "== phone2dslr run finished =="]
    for type_name, label in _REPORTED:
        if type_name in artifacts:
            lines.append(f"{label:>16}: {artifacts[type_name].uri}")
    report = artifacts.get("IngestReport")
    if report is not None:
        summary_file = os.path.join(report.uri, "summary.json")
        if os.path.exists(summary_file):
            with open(summary_file, encoding="utf-8") as f:
                counts = json.load(f)
            lines.append(f"{'ingested':>16}: {json.dumps(counts.get('examples', counts))}")
            rejects = counts.get("rejects", {})
            lines.append(f"{'set aside':>16}: {sum(rejects.values()) if rejects else 0} "
                         f"{json.dumps(rejects) if rejects else ''} (see {os.path.join(report.uri, 'rejects.jsonl')})")
    anomalies = artifacts.get("ExampleAnomalies")
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
