"""Run the pipeline on this machine with LocalDagRunner (Beam DirectRunner underneath)."""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import time

import phone2dslr    # noqa: F401  (Keras/TF environment first)
from phone2dslr import console
from phone2dslr.config import PipelineConfig
from phone2dslr.errors import one_line
from phone2dslr.pipeline import outputs, run_lock


class _Progress(logging.Filter):
    """Turns TFX's INFO log into one line per component start/finish/cache hit; drops other INFO.

    A filter on the absl logger (not a handler) so the dropped records never reach the handlers
    that Beam and TensorFlow install on the root logger; warnings and errors pass unchanged, and
    with `verbose` the INFO records pass too.
    """

    _PATTERNS = (
        (re.compile(r"Component (\S+) is running\."), "{} ..."),
        (re.compile(r"Component (\S+) is finished\."), "{} done"),
        (re.compile(r"A cached execution (\d+) is used\."), "  (cached: execution {} reused)"),
    )

    def __init__(self, verbose: bool = False) -> None:
        super().__init__()
        self._start = time.monotonic()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
        for pattern, template in self._PATTERNS:
            match = pattern.fullmatch(message)
            if match:
                print(f"[{time.monotonic() - self._start:6.0f}s] " + template.format(match.group(1)), flush=True)
        return self.verbose


def _show_progress(verbose: bool = False) -> None:
    from absl import logging as absl_logging

    absl_logger = absl_logging.get_absl_logger()
    absl_logger.setLevel(logging.INFO)
    for f in absl_logger.filters:
        if isinstance(f, _Progress):
            f.verbose = verbose
    if not any(isinstance(f, _Progress) for f in absl_logger.filters):
        absl_logger.addFilter(_Progress(verbose))
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


def _check_gpu() -> None:
    """Say so when the machine has an NVIDIA GPU that TensorFlow cannot use.

    TF_CPP_MIN_LOG_LEVEL=3 hides TensorFlow's own "failed call to cuInit" (on a machine without a
    GPU it is noise); where a GPU is present, training silently on the CPU would not be honest.
    Machines without GPU device files are not probed at all.
    """
    if not console.nvidia_gpu_present():
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        print("warning: this machine has an NVIDIA GPU that TensorFlow cannot use (driver or CUDA "
              "libraries missing); running on the CPU. `--verbose` shows TensorFlow's CUDA messages.",
              file=sys.stderr)


def run(config: PipelineConfig, until: str | None = None, run_fn: str | None = None,
        verbose: bool = False) -> int:
    """Run (or resume from cache) the local pipeline and print where its results are.

    verbose: print TFX's whole INFO log, not only one progress line per component.
    Returns a process exit code; failures end with one readable line rather than a Beam trace.
    Raises run_lock.RunLockError (one line, naming the running one) when another run holds the
    pipeline root: two runs would write its MLMD database and folders at once (pipeline/run_lock.py).
    """
    # First of all, so that a second run stops before it writes anything. A remote (gs://) root
    # cannot hold a flock; the local MLMD database's folder, which such a run also writes, is locked.
    lock_dir = config.pipeline_root if "://" not in config.pipeline_root else \
        os.path.dirname(os.path.abspath(config.metadata_path))
    with run_lock.hold(lock_dir):
        _check_folders(config)
        return _run_locked(config, until, run_fn, verbose)


def _check_folders(config: PipelineConfig) -> None:
    """The local folders a run writes can be created: else one line now, not a traceback later."""
    for key, folder in (("metadata_path", os.path.dirname(os.path.abspath(config.metadata_path))),
                        ("serving_dir", config.serving_dir)):
        if not folder or "://" in folder:
            continue
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise run_lock.RunLockError(f"{key}: cannot create folder {folder}: {e.strerror or e}; "
                                        f"choose another {key}") from None


def _run_locked(config: PipelineConfig, until: str | None, run_fn: str | None, verbose: bool) -> int:
    """`run` once this process holds the pipeline root."""
    from tfx import v1 as tfx

    from phone2dslr.pipeline.pipeline import create_pipeline

    if config.data.demo_dir:
        from phone2dslr.pipeline import demo_data

        print(f"demo data: {demo_data.ensure(config.data.demo_dir, seed=config.data.seed, phone=config.data.phone)}")
    os.makedirs(os.path.dirname(os.path.abspath(config.metadata_path)), exist_ok=True)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    _show_progress(verbose)
    _check_gpu()
    config = dataclasses.replace(config, beam_pipeline_args=_local_beam_args(config.beam_pipeline_args))
    from phone2dslr.pipeline.beam_workers import unreachable_workers

    workers_error = unreachable_workers(config.beam_pipeline_args)
    if workers_error:
        print(f"pipeline not started: {workers_error}", file=sys.stderr)
        return 2
    try:
        pipeline = create_pipeline(config, metadata, until, **({"run_fn": run_fn} if run_fn else {}))
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as e:  # noqa: BLE001 - the one place that turns any failure into one line
        # The innermost of our own errors says what to fix; TFX and Beam wrap it.
        print(f"pipeline failed: {one_line(e, prefer_ours=True, limit=2000)}", file=sys.stderr)
        return 1
    print(outputs.summary(config))
    return 0
