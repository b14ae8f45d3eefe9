"""Run the pipeline on this machine with LocalDagRunner (Beam DirectRunner underneath)."""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import time

import phone2dslr    # noqa: F401  (Keras/TF environment first)
from phone2dslr.config import PipelineConfig
from phone2dslr.pipeline import outputs


class _Progress(logging.Filter):
    """Turns TFX's INFO log into one line per component start/finish/cache hit; drops other INFO.

    A filter on the absl logger (not a handler) so the dropped records never reach the handlers
    that Beam and TensorFlow install on the root logger; warnings and errors pass unchanged.
    """

    _PATTERNS = (
        (re.compile(r"Component (\S+) is running\."), "{} ..."),
        (re.compile(r"Component (\S+) is finished\."), "{} done"),
        (re.compile(r"A cached execution (\d+) is used\."), "  (cached: execution {} reused)"),
    )

    def __init__(self) -> None:
        super().__init__()
        self._start = time.monotonic()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
        for pattern, template in self._PATTERNS:
            match = pattern.fullmatch(message)
            if match:
                print(f"[{time.monotonic() - self._start:6.0f}s] " + template.format(match.group(1)), flush=True)
        return False


def _show_progress() -> None:
    from absl import logging as absl_logging

    absl_logger = absl_logging.get_absl_logger()
    absl_logger.setLevel(logging.INFO)
    if not any(isinstance(f, _Progress) for f in absl_logger.filters):
        absl_logger.addFilter(_Progress())
        # Components reset absl's verbosity while they run (it is a flag); keep INFO records
        # flowing into the filter, which alone decides what is printed.
        absl_logger.setLevel = lambda level: logging.Logger.setLevel(absl_logger, min(level, logging.INFO))


_DEPENDENCY_FLAGS = ("--setup_file", "--extra_package", "--requirements_file", "--sdk_container_image",
                     "--worker_harness_container_image")


def _local_beam_args(args: list[str]) -> list[str]:
    """Without a dependency flag, TFX builds a throwaway sdist of itself for every Beam component
    (seconds each, for workers that a local in-process runner never starts); naming this
    project's setup.py satisfies that check and is what a remote runner would stage anyway."""
    setup_py = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
    if any(a.split("=")[0] in _DEPENDENCY_FLAGS for a in args) or not os.path.exists(setup_py):
        return list(args)
    return [*args, f"--setup_file={setup_py}"]


def run(config: PipelineConfig, until: str | None = None, run_fn: str | None = None) -> int:
    """Run (or resume from cache) the local pipeline and print where its results are.

    Returns a process exit code; failures end with one readable line rather than a Beam trace.
    """
    from tfx import v1 as tfx

    from phone2dslr.pipeline.pipeline import create_pipeline

    if config.data.demo_dir:
        from phone2dslr.pipeline import demo_data

        print(f"demo data: {demo_data.ensure(config.data.demo_dir, seed=config.data.seed, phone=config.data.phone)}")
    os.makedirs(os.path.dirname(os.path.abspath(config.metadata_path)), exist_ok=True)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    _show_progress()
    config = dataclasses.replace(config, beam_pipeline_args=_local_beam_args(config.beam_pipeline_args))
    try:
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata, until, **({"run_fn": run_fn} if run_fn else {})))
    except Exception as e:  # noqa: BLE001 - the one place that turns any failure into one line
        print(f"pipeline failed: {outputs.one_line(e)}", file=sys.stderr)
        return 1
    print(outputs.summary(config))
    return 0
