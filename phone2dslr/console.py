"""What a run prints: TensorFlow's native start-up log held to its own threshold, known noise dropped.

Plain Python (no TensorFlow import), at the bottom of the import layers; the package root installs
the native-log threshold before anything imports TensorFlow, the CLI calls `configure`.

Three sources of noise, each handled where it is made:
- TensorFlow's C++ log. TF 2.21 logs through Abseil, and Abseil writes every record made before
  `absl::InitializeLog()` to stderr whatever the threshold (abseil/abseil-cpp PR #1957, open;
  tensorflow/tensorflow issue #100442): `import tensorflow` prints oneDNN and "Could not find cuda
  drivers" INFO lines although TF_CPP_MIN_LOG_LEVEL says otherwise. `native_log_threshold()` holds
  file descriptor 2 while a block runs and writes back every line except C++ log records below
  TF_CPP_MIN_LOG_LEVEL: it applies TensorFlow's own documented setting, it keeps no list of
  messages, and what it keeps (Python output, FATAL records, unknown lines) is never lost. After
  start-up TensorFlow honours the variable itself.
- Python loggers of TFX and TensorFlow: `KnownNoise` drops exactly the records listed in
  `KNOWN_NOISE` (each non-actionable, with the reason) and TensorFlow deprecation notices raised
  from inside other libraries; everything else passes.
- Python `DeprecationWarning`s attributed to TF / TFX / Beam modules (a deprecated call in our own
  code is attributed to our module and still shows).
With TF_CPP_MIN_LOG_LEVEL=3 TensorFlow's "failed call to cuInit" is hidden too; that is noise on a
machine without a GPU, so where `nvidia_gpu_present()` the local runner checks that TensorFlow
sees the GPU and says so in one line when it does not.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType

# Abseil's format ("I0000 00:00:1795956670.953592   14640 port.cc:153] ..."), the older TSL one
# ("2025-09-17 14:44:05.157831: I external/.../cudart_stub.cc:32] ...") and TFLite's minimal
# logger ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU."); one group holds the severity.
_NATIVE_RECORD = re.compile(r"([IWEF])\d{4} [\d:.]+\s+\d+ [^\s\]]+:\d+\] "
                            r"|\d{4}-\d\d-\d\d [\d:.]+: ([IWEF]) [^\s\]]+:\d+\] "
                            r"|(VERBOSE|INFO|WARNING|ERROR): ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3, "VERBOSE": 0, "INFO": 0, "WARNING": 1, "ERROR": 2}
# A Python warning or traceback line is never the continuation of a native record.
_PYTHON_OUTPUT = re.compile(r"Traceback \(|\S.*:\d+: \w+(Warning|Error): ")

# (logger, exact message or its %-template, why it is not actionable).
KNOWN_NOISE: tuple[tuple[str, str, str], ...] = (
    ("absl", "ArtifactQuery.property_predicate is not supported.",
     "TFX 1.21 channel_resolver.py tests a proto message for truth (always true) instead of "
     "HasField, so it warns on every input channel; no channel of ours sets a predicate"),
    ("absl", "Execution %d failed.",
     "TFX's launcher.py logs it right before re-raising the executor's error, which the local "
     "runner reports as one line ('pipeline failed: ...')"),
    ("tensorflow", "No training configuration found in save file, so the model was *not* compiled. "
                   "Compile it manually.",
     "tf_keras says so when the Evaluator / TFLite export load a SavedModel for inference"),
    ("tensorflow", "Compiled the loaded model, but the compiled metrics have yet to be built. "
                   "`model.compile_metrics` will be empty until you train or evaluate the model.",
     "tf_keras says so when a compiled model is reloaded and only run forward"),
)
# Python DeprecationWarnings attributed to these modules are hidden (the module a warning is
# attributed to is the caller at the warning's stacklevel, so our own deprecated calls still show).
THIRD_PARTY_MODULES = r"(tensorflow\w*|tf_keras|keras|tfx|tfx_bsl|apache_beam|ml_metadata|absl|google)(\.|$)"


def min_native_level() -> int:
    """TF_CPP_MIN_LOG_LEVEL as TensorFlow reads it: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL; unset or bad: 0."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_native_log(text: str, min_level: int) -> str:
    """`text` (what a block wrote to stderr) without C++ log records below `min_level`.

    A record is a line in Abseil's, TSL's or TFLite's format with severity I/W/E/F (0-3); an Abseil
    or TSL record also owns the lines after it up to the next record or Python output (multi-line
    messages). Abseil's pre-init notice is a WARNING record. Any other line is kept, in order.
    """
    kept: list[str] = []
    dropping = False
    for line in text.splitlines(keepends=True):
        match = _NATIVE_RECORD.match(line)
        if match:
            severity = next(g for g in match.groups() if g)
            if _SEVERITY[severity] < min_level:
                # Abseil and TSL records may run over several lines; TFLite's are one line each.
                dropping = len(severity) == 1
                continue
            dropping = False
        elif _PYTHON_OUTPUT.match(line):
            dropping = False
        if not dropping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def native_log_threshold(min_level: int | None = None) -> Iterator[None]:
    """Hold file descriptor 2 during the block; on leaving, write back what `filter_native_log` keeps.

    min_level: default TF_CPP_MIN_LOG_LEVEL. When the block raises, everything it wrote is
    written back unfiltered (it may explain the failure). Output of a process killed inside the
    block is lost, so keep blocks short (an import, one conversion). A no-op at level 0 or when
    descriptor 2 is not usable.
    """
    level = min_native_level() if min_level is None else min_level
    try:
        saved = os.dup(2) if level > 0 else None
    except OSError:
        saved = None
    if saved is None:
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", "replace")
            text = text if failed else filter_native_log(text, level)
            if text:
                os.write(2, text.encode("utf-8"))


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of `tensorflow` inside `native_log_threshold`, then steps aside."""

    def __init__(self, loader: importlib.abc.Loader, hook: "_TensorFlowImportHook"):
        self._loader, self._hook = loader, hook

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Only this first run is held: the hook leaves, the module keeps its real loader.
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self._hook)
        module.__loader__ = module.__spec__.loader = self._loader
        with native_log_threshold():
            self._loader.exec_module(module)


class _TensorFlowImportHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself; hands `import tensorflow` the real spec with a loader held to the threshold.

    It stays until the import runs (a bare `importlib.util.find_spec("tensorflow")`, as availability
    checks do, does not use it up).
    """

    def __init__(self) -> None:
        self._finding = False

    def find_spec(self, fullname: str, path: object,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow" or self._finding:
            return None
        self._finding = True  # the finders after this one locate the real package
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self)
        return spec


def hold_tensorflow_start_up() -> None:
    """Make the first `import tensorflow` of this process honour TF_CPP_MIN_LOG_LEVEL (see module doc).

    Idempotent; does nothing once TensorFlow is loaded. The level is read when the import happens,
    so `configure(verbose=True)` before it still brings every line back.
    """
    if "tensorflow" in sys.modules or any(isinstance(f, _TensorFlowImportHook) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TensorFlowImportHook())


def _own_dirs() -> tuple[str, ...]:
    """Source folders of phone2dslr and of the subpackages it maps (editable or installed)."""
    dirs = []
    for name in ("phone2dslr", "phone2dslr.pipeline", "phone2dslr.components", "phone2dslr.trainer",
                 "phone2dslr.export", "phone2dslr.kubeflow"):
        spec = importlib.util.find_spec(name)
        dirs += [os.path.abspath(p) + os.sep for p in (spec.submodule_search_locations or [])] if spec else []
    return tuple(dirs)


class KnownNoise(logging.Filter):
    """Drops the `KNOWN_NOISE` records of one logger and, on 'tensorflow', deprecation notices whose
    call site is outside this project (TF's deprecation.py logs "From <file>:<line>: ... is
    deprecated"); a notice about our own call passes, as does every other record."""

    def __init__(self, logger_name: str):
        super().__init__()
        self.messages = frozenset(m for name, m, _ in KNOWN_NOISE if name == logger_name)
        self.deprecations = logger_name == "tensorflow"
        self._own: tuple[str, ...] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        template = record.msg if isinstance(record.msg, str) else ""
        if template in self.messages or record.getMessage() in self.messages:
            return False
        if self.deprecations and template.startswith("From %s: ") and "deprecated" in template and record.args:
            if self._own is None:
                self._own = _own_dirs()
            call_site = os.path.abspath(str(record.args[0]).rsplit(":", 1)[0])
            return call_site.startswith(self._own)
        return True


def configure(verbose: bool = False) -> None:
    """Set up this process's console: quiet (known noise dropped) or verbose (everything).

    Call before TensorFlow loads: verbose sets TF_CPP_MIN_LOG_LEVEL=0, which TensorFlow and
    `hold_tensorflow_start_up` read at import. Idempotent; a later call switches modes.
    """
    from absl import logging as _  # noqa: F401  (absl must create its own 'absl' logger class first)

    loggers = {name for name, _, _ in KNOWN_NOISE}
    for name in loggers:
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, KnownNoise)]:
            logger.removeFilter(f)
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        warnings.simplefilter("default")
        return
    for name in loggers:
        logging.getLogger(name).addFilter(KnownNoise(name))
    for category in (DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY_MODULES)


def nvidia_gpu_present() -> bool:
    """Whether this machine exposes an NVIDIA GPU to this process (device files of the driver).

    Read from /dev and /proc, not by loading CUDA, so asking costs nothing on a CPU machine.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return os.path.exists("/dev/nvidiactl") or bool(_listdir("/proc/driver/nvidia/gpus"))


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def count_arg(minimum: int, maximum: int | None = None, example: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in [minimum, maximum]; anything else is a usage error (exit 2) that
    says what to pass, before any model loads."""
    wanted = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"
    if example is not None:
        wanted += f", e.g. {example}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"got {text!r}; pass {wanted}")
        return value
    return parse
