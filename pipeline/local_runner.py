"""Run the pipeline on this machine with LocalDagRunner (Beam DirectRunner underneath)."""
from __future__ import annotations

import logging
import os
import re
import sys
import time

import pipeline  # noqa: F401  (Keras/TF environment first)
from pipeline.config import PipelineConfig
from pipeline import outputs


class _Progress(logging.Handler):
    """Prints one line per component start/finish/cache hit from TFX's INFO log, and nothing else."""

    _PATTERNS = (
        (re.compile(r"Component (\S+) is running\."), "{} ..."),
        (re.compile(r"Component (\S+) is finished\."), "{} done"),
        (re.compile(r"A cached execution (\d+) is used\."), "  (cached: execution {} reused)"),
    )

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._start = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for pattern, template in self._PATTERNS:
            match = pattern.fullmatch(message)
            if match:
                print(f"[{time.monotonic() - self._start:6.0f}s] " + template.format(match.group(1)), flush=True)


def _show_progress() -> None:
    from absl import logging as absl_logging

    absl_logging.get_absl_handler().setLevel(logging.WARNING)  # keep the rest of TFX's INFO quiet
    absl_logger = absl_logging.get_absl_logger()
    absl_logger.setLevel(logging.INFO)
    if not any(isinstance(h, _Progress) for h in absl_logger.handlers):
        absl_logger.addHandler(_Progress())


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
    _show_progress()
    try:
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata, until))
    except Exception as e:  # noqa: BLE001 - the one place that turns any failure into one line
        print(f"pipeline failed: {outputs.one_line(e)}", file=sys.stderr)
        return 1
    print(outputs.summary(config))
    return 0
