"""phone2dslr.console: native start-up log held to TF_CPP_MIN_LOG_LEVEL, known noise dropped, nothing else.

The import hook is checked with a stand-in `tensorflow` package that writes Abseil-format records
to file descriptor 2 the way TensorFlow's shared libraries do at load time (fast, no TensorFlow);
tests/pipeline/test_cli_output.py checks the real thing end to end.
"""
from __future__ import annotations

import logging
import pathlib
import subprocess
import sys
import textwrap
import warnings

import pytest

from phone2dslr import console

REPO = pathlib.Path(__file__).resolve().parents[2]

# Lines as TF 2.21 prints them on `import tensorflow` (copied from a run, shortened).
ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
INFO = "I0000 00:00:1795956670.953592   14640 port.cc:153] oneDNN custom operations are on.\n"
INFO_TWO_LINES = ("I0000 00:00:1795956885.155007   17315 cpu_feature_guard.cc:227] This TensorFlow binary is "
                  "optimized to use available CPU instructions.\nTo enable the following instructions: AVX2 FMA, "
                  "rebuild TensorFlow with the appropriate compiler flags.\n")
ERROR = ("E0000 00:00:1795956694.570122   14640 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
         "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
TSL_INFO = ("2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find "
            "cuda drivers on your machine, GPU will not be used.\n")
FATAL = "F0000 00:00:1795956694.6   14640 check.cc:7] Check failed: x != nullptr\n"
TFLITE_INFO = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
PYTHON_WARNING = "/x/y.py:3: UserWarning: something the user should see\n"
PLAIN = "a line printed by Python code\n"
ALL = ABSL_NOTICE + INFO + INFO_TWO_LINES + ERROR + TSL_INFO + PYTHON_WARNING + FATAL + TFLITE_INFO + PLAIN


@pytest.mark.parametrize("level, expected", [
    (0, ALL),
    (1, ABSL_NOTICE + ERROR + PYTHON_WARNING + FATAL + PLAIN),
    (2, ERROR + PYTHON_WARNING + FATAL + PLAIN),
    (3, PYTHON_WARNING + FATAL + PLAIN),
    (4, PYTHON_WARNING + PLAIN),
])
def test_native_records_below_the_level_are_dropped_and_nothing_else(level, expected):
    assert console.filter_native_log(ALL, level) == expected


def test_python_output_after_a_dropped_record_is_kept():
    assert console.filter_native_log(INFO_TWO_LINES + PYTHON_WARNING + PLAIN, 3) == PYTHON_WARNING + PLAIN
    assert console.filter_native_log(TFLITE_INFO + PLAIN, 1) == PLAIN  # TFLite records are one line
    assert console.filter_native_log(INFO + "Traceback (most recent call last):\n", 3) == \
        "Traceback (most recent call last):\n"


def _fake_tensorflow(tmp_path: pathlib.Path, body: str = "") -> pathlib.Path:
    """A `tensorflow` package that writes the start-up records to fd 2 while it loads."""
    package = tmp_path / "fake" / "tensorflow"
    package.mkdir(parents=True, exist_ok=True)
    lines = ABSL_NOTICE + INFO + INFO_TWO_LINES + ERROR + FATAL
    (package / "__init__.py").write_text(textwrap.dedent(f"""\
        import os, sys
        os.write(2, {lines.encode()!r})
        print("python output while loading", file=sys.stderr)
        {body}
        """))
    return package.parent


def _python(code: str, tmp_path: pathlib.Path, level: str | None, body: str = "") -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{_fake_tensorflow(tmp_path, body)}:{REPO}"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


CHECK = textwrap.dedent("""\
    import importlib.util, sys
    import phone2dslr
    assert importlib.util.find_spec("tensorflow") is not None   # an availability check uses nothing up
    import tensorflow
    hooks = [f for f in sys.meta_path if type(f).__name__ == "_TensorFlowImportHook"]
    print(type(tensorflow.__loader__).__name__, type(tensorflow.__spec__.loader).__name__, len(hooks))
    """)


def test_first_tensorflow_import_is_held_to_the_default_level(tmp_path):
    out = _python(CHECK, tmp_path, level=None)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["SourceFileLoader", "SourceFileLoader", "0"]  # real loader kept, hook gone
    assert out.stderr == FATAL + "python output while loading\n"  # TF_CPP_MIN_LOG_LEVEL defaults to 3


def test_a_level_the_user_set_wins(tmp_path):
    out = _python(CHECK, tmp_path, level="2")
    assert out.stderr == ERROR + FATAL + "python output while loading\n"
    out = _python(CHECK, tmp_path, level="0")  # what --verbose sets: nothing held
    assert out.stderr == ABSL_NOTICE + INFO + INFO_TWO_LINES + ERROR + FATAL + "python output while loading\n"


def test_a_failed_import_writes_everything_back(tmp_path):
    out = _python("import phone2dslr, tensorflow", tmp_path, level=None, body="raise ImportError('no libcuda')")
    assert out.returncode == 1
    assert INFO in out.stderr and ERROR in out.stderr and "ImportError: no libcuda" in out.stderr


@pytest.fixture
def clean_console(monkeypatch):
    """Undo configure(): logger filters, warning filters, TF_CPP_MIN_LOG_LEVEL."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    loggers = [logging.getLogger(name) for name in ("absl", "tensorflow")]
    before = [list(logger.filters) for logger in loggers]
    with warnings.catch_warnings():
        yield
    for logger, filters in zip(loggers, before):
        logger.filters[:] = filters


def _record(logger: str, msg: str, args: tuple = ()) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.WARNING, "x.py", 1, msg, args, None)


DEPRECATION = ("From %s: %s (from %s) is deprecated and will be removed %s.\nInstructions for updating:\n%s")


def test_known_noise_goes_and_everything_else_stays(clean_console):
    console.configure()
    absl, tf = logging.getLogger("absl"), logging.getLogger("tensorflow")
    assert not absl.filter(_record("absl", "ArtifactQuery.property_predicate is not supported."))
    assert absl.filter(_record("absl", "ArtifactQuery.property_predicate is not supported. Also this."))
    assert absl.filter(_record("absl", "Resolver found no blessed model"))
    assert not absl.filter(_record("absl", "Execution %d failed.", (7,)))
    assert absl.filter(_record("absl", "Execution %d failed to publish.", (7,)))
    for name, message, _ in console.KNOWN_NOISE:
        assert not logging.getLogger(name).filter(_record(name, message, (1,) if "%d" in message else ()))
    third_party = ("/venv/site-packages/tensorflow_model_analysis/writers/w.py:127", "tf_record_iterator",
                   "tensorflow.python.lib.io.tf_record", "in a future version", "Use tf.data")
    ours = (f"{REPO / 'export' / 'enhance.py'}:40",) + third_party[1:]
    assert not tf.filter(_record("tensorflow", DEPRECATION, third_party))
    assert tf.filter(_record("tensorflow", DEPRECATION, ours))  # our own deprecated call is shown


def test_verbose_brings_everything_back(clean_console):
    console.configure()
    console.configure(verbose=True)
    import os

    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert logging.getLogger("absl").filter(_record("absl", "ArtifactQuery.property_predicate is not supported."))
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn_explicit("old", DeprecationWarning, "t.py", 1, module="tensorflow.python.x")
    assert len(seen) == 1


def test_deprecation_warnings_from_libraries_are_hidden_ours_are_not(clean_console):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # under pytest.ini's ignore::DeprecationWarning
        console.configure()
        warnings.warn_explicit("old", DeprecationWarning, "a.py", 1, module="apache_beam.io.x")
        warnings.warn_explicit("old", DeprecationWarning, "b.py", 1, module="tensorflow_transform.y")
        warnings.warn_explicit("old", DeprecationWarning, "c.py", 1, module="phone2dslr.trainer.z")
    assert [str(w.filename) for w in seen] == ["c.py"]


def test_no_gpu_when_cuda_devices_are_hidden(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert console.nvidia_gpu_present() is False
