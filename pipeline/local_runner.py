"""Run the pipeline on this machine with LocalDagRunner (Beam DirectRunner underneath)."""
from __future__ import annotations

import os
import sys

import pipeline  # noqa: F401  (Keras/TF environment first)
from pipeline.config import PipelineConfig
from pipeline import outputs


def run(config: PipelineConfig, until: str | None = None) -> int:
    """Run (or resume from cache) the local pipeline and print where its results are.

    Returns a process exit code; failures end with one readable line rather than a Beam trace.
    """
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    if config.data.demo_dir:
        from pipeline import demo_data

        print(f"demo data: {demo_data.ensure(config.data.demo_dir, seed=config.data.seed, phone=config.data.phone)}")
    os.makedirs(os.path.dirname(os.path.abspath(config.metadata_path)), exist_ok=True)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    try:
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata, until))
    except Exception as e:  # noqa: BLE001 - the one place that turns any failure into one line
        print(f"pipeline failed: {outputs.one_line(e)}", file=sys.stderr)
        return 1
    print(outputs.summary(config))
    return 0
