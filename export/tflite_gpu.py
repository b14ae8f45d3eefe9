"""Will a TFLite variant run on a phone's GPU delegate? TensorFlow's analyzer, plus what it misses.

`gpu_verdict` runs `tf.lite.experimental.Analyzer.analyze(model_content=..., gpu_compatibility=True)`,
which prints its report (it returns nothing), so the report is captured at both levels it may use:
Python's sys.stdout and file descriptor 1 (the C++ side). Its verdict is the line "Your model looks
compatible with GPU delegate" or one "GPU COMPATIBILITY WARNING: <why>" line per op it rejects.

The analyzer's per-op check is necessary, not sufficient: with TensorFlow 2.21 it passed TOPK_V2
and a Flex (Select TF) op, which the GPU delegate cannot run, and it does not look at the input
shape. So two project checks are added to its issues: Flex ops (TensorFlow kernels, CPU only), and
a dynamic input shape (-1 in the shape signature: the GPU delegate and NNAPI are applied to fixed
shapes; such an app must resize the input before applying the delegate, or ship the `fixed`
variant). `gpu_compatible` is true only when neither the analyzer nor these checks found an issue.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from typing import Any

from phone2dslr.errors import one_line

_COMPATIBLE = "looks compatible with GPU delegate"
_WARNING = "GPU COMPATIBILITY WARNING:"
_OP_LINE = re.compile(r"\s*Op#(\d+) ([A-Za-z0-9_]+)\(")


def analyzer_report(model: bytes) -> str:
    """The analyzer's text report of `model` (TFLite bytes) with the GPU compatibility check."""
    import tensorflow as tf

    text = io.StringIO()
    sys.stdout.flush()  # what was printed before goes out before descriptor 1 is taken
    with tempfile.TemporaryFile() as native:
        saved = os.dup(1)
        os.dup2(native.fileno(), 1)
        try:
            with contextlib.redirect_stdout(text):
                tf.lite.experimental.Analyzer.analyze(model_content=bytes(model), gpu_compatibility=True)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        native.seek(0)
        captured = native.read().decode("utf-8", "replace")
    return text.getvalue() + captured


def parse_report(report: str) -> tuple[bool | None, list[str]]:
    """(analyzer verdict, its issues) from a report: True when it says the model looks compatible,
    False when it warns, None when it says neither (a changed format: not taken as a pass)."""
    issues, op = [], ""
    for line in report.splitlines():
        match = _OP_LINE.match(line)
        if match:
            op = f"op #{match.group(1)} {match.group(2)}"
        elif line.startswith(_WARNING):
            why = line[len(_WARNING):].strip()
            if not why.startswith("Subgraph#"):  # the per-subgraph summary repeats the op lines
                issues.append(f"{op}: {why}" if op else why)
    if issues:
        return False, issues
    return (True if _COMPATIBLE in report else None), []


def gpu_verdict(model: bytes, input_shape_signature: list[int] | None = None) -> dict[str, Any]:
    """What tflite_results.json records per variant about the GPU delegate.

    Returns {"gpu_compatible": bool | None, "gpu_issues": [str], "gpu_analyzer": "compatible" |
    "incompatible" | "no verdict" | "unavailable: <why>"}. `gpu_compatible` is None only when the
    analyzer gave no verdict and the project checks found nothing. Never raises for the analyzer's
    own failures (they are recorded as "unavailable").
    """
    try:
        report = analyzer_report(model)
    except Exception as e:  # noqa: BLE001  (an experimental API: its failure must not stop the export)
        analyzer, issues, report = f"unavailable: {one_line(e)}", [], ""
        verdict: bool | None = None
    else:
        verdict, issues = parse_report(report)
        analyzer = {True: "compatible", False: "incompatible", None: "no verdict"}[verdict]
    extra = [f"{name}: a Flex (Select TensorFlow) op runs on the CPU only" for name in sorted(set(
        m.group(2) for m in map(_OP_LINE.match, report.splitlines()) if m and m.group(2).startswith("Flex")))]
    if input_shape_signature is not None and -1 in input_shape_signature:
        extra.append(f"input shape {input_shape_signature} is dynamic: the GPU delegate and NNAPI need a fixed "
                     "size (resize the input before applying the delegate, or ship the fixed variant)")
    issues = issues + extra
    compatible = False if issues else verdict
    return {"gpu_compatible": compatible, "gpu_issues": issues, "gpu_analyzer": analyzer}


__all__ = ["analyzer_report", "parse_report", "gpu_verdict"]
