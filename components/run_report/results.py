"""What the Evaluator decided and why, read from its real output into render.Gate.

The Evaluator's ModelEvaluation folder holds the EvalConfig it actually ran (eval_config.json,
with TFX's defaults applied: model names, and change thresholds dropped when there was no
baseline), the MetricsForSlice records and the ValidationResult. The blessing artifact holds only
the yes/no. So the thresholds are taken from the stored config with TFMA's own
`metric_thresholds_from_metrics_specs` (the function its validator uses), each is matched per
slice with the recorded value, and it failed exactly when the ValidationResult lists it: the page
never re-judges a threshold itself, it only explains TFMA's judgement.
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterable

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.writers import eval_config_writer

from phone2dslr.components.run_report.page import OVERALL, Check, Gate, SliceQuality

# TFMA's default names for the InputPSNR / InputSSIM classes -> the names used on page and artifact
# (pipeline/evaluation.py names the newer metrics itself, already canonical: psnr_pooled_input, ...).
CANONICAL = {"input_psnr": "psnr_input", "input_ssim": "ssim_input"}
NO_BASELINE = "no baseline: first blessed model (change-vs-baseline thresholds are not applied)"


def canonical(name: str) -> str:
    return CANONICAL.get(name, name)


def slice_name(slice_key: Any) -> str:
    """'Overall' or 'source = iphone' (bytes values decoded) from a SliceKey proto."""
    columns = tfma.slicer.deserialize_slice_key(slice_key)
    if not columns:
        return OVERALL
    parts = []
    for column, value in columns:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        parts.append(f"{column} = {value}")
    return ", ".join(parts)


def _value(metric_value: Any) -> float | None:
    if metric_value.HasField("double_value"):
        return float(metric_value.double_value.value)
    if metric_value.HasField("bounded_value"):
        return float(metric_value.bounded_value.value.value)
    return None


def _number(x: float) -> str:
    return f"{x:g}"


def describe_threshold(threshold: Any) -> str:
    """A GenericValueThreshold / GenericChangeThreshold as a rule people read."""
    if isinstance(threshold, config_pb2.GenericValueThreshold):
        lower = threshold.lower_bound.value if threshold.HasField("lower_bound") else None
        upper = threshold.upper_bound.value if threshold.HasField("upper_bound") else None
        if lower is not None and upper is not None:
            return f"between {_number(lower)} and {_number(upper)}"
        if lower is not None:
            return f">= {_number(lower)}"
        return f"<= {_number(upper)}" if upper is not None else "any value"
    higher = threshold.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
    op = ">=" if higher else "<="
    rules = []
    if threshold.HasField("absolute"):
        rules.append(f"change vs baseline {op} {_number(threshold.absolute.value)}")
    if threshold.HasField("relative"):
        rules.append(f"relative change vs baseline {op} {_number(threshold.relative.value)}")
    return " and ".join(rules) or "change vs baseline (no bound)"


def read_evaluation(uri: str) -> tuple[Any, list[Any], Any]:
    """(EvalConfig or None, MetricsForSlice records, ValidationResult or None) of an Evaluator output."""
    eval_config = eval_config_writer.load_eval_run(uri)[0]
    metrics = list(tfma.load_metrics(uri))
    validation = None
    if tf.io.gfile.glob(os.path.join(uri, "validations*")):
        validation = tfma.load_validation_result(uri)
    return eval_config, metrics, validation


def _model_names(eval_config: Any) -> tuple[set[str], str | None]:
    specs = list(eval_config.model_specs) if eval_config is not None else []
    baseline = next((s.name for s in specs if s.is_baseline), None)
    candidates = {s.name for s in specs if not s.is_baseline} or {""}
    return candidates, baseline


def _slice_order(name: str) -> tuple[int, str]:
    return (0 if name == OVERALL else 1, name)


def build_gate(eval_config: Any, metrics: Iterable[Any], validation: Any, blessed: bool,
               baseline_note: str = "") -> Gate:
    """Gate from TFMA's own records; pure over the protos (the executor does the reading)."""
    metrics = list(metrics)  # walked again for per-slice thresholds
    candidates, baseline_name = _model_names(eval_config)
    by_slice: dict[str, SliceQuality] = {}
    values: dict[str, dict[Any, float | None]] = {}  # slice -> MetricKey -> value
    for record in metrics:
        name = slice_name(record.slice_key)
        quality = by_slice.setdefault(name, SliceQuality(name))
        for kv in record.metric_keys_and_values:
            key = tfma.metrics.MetricKey.from_proto(kv.key)
            value = _value(kv.value)
            values.setdefault(name, {})[key] = value
            if value is None:
                continue
            metric = canonical(key.name)
            if key.model_name == baseline_name and baseline_name is not None:
                if not key.is_diff:
                    quality.baseline[metric] = value
            elif key.is_diff:
                quality.diff[metric] = value
            else:
                quality.candidate[metric] = value
    slices = sorted(by_slice.values(), key=lambda s: _slice_order(s.name))
    has_baseline = any(s.baseline for s in slices) or any(s.diff for s in slices)

    failures: dict[tuple[str, Any], Any] = {}
    problems: list[str] = []
    if validation is None:
        problems.append("the Evaluator wrote no validation result (no thresholds configured?)")
    else:
        for per_slice in validation.metric_validations_per_slice:
            name = slice_name(per_slice.slice_key)
            for failure in per_slice.failures:
                failures[(name, tfma.metrics.MetricKey.from_proto(failure.metric_key))] = failure
        if validation.missing_thresholds:
            problems.append("no thresholds were configured, so TFMA would not validate the model")
        for spec in validation.missing_slices:
            problems.append(f"slice {_spec_text(spec)} matched no examples in the evaluated split")

    checks: list[Check] = []
    thresholds = (tfma.metrics.metric_thresholds_from_metrics_specs(eval_config.metrics_specs, eval_config=eval_config)
                  if eval_config is not None else {})
    for s in slices:
        for key, pairs in thresholds.items():
            if key.model_name not in candidates:
                continue
            for slice_spec, threshold in pairs:
                if slice_spec is not None and not _applies(slice_spec, s.name, metrics):
                    continue
                checks.append(_check(s.name, key, threshold, values.get(s.name, {}).get(key),
                                     failures.get((s.name, key))))
    known = {(c.slice, c.metric, c.is_change) for c in checks}
    for (name, key), failure in failures.items():  # a failure on a slice the metrics do not hold
        if (name, canonical(key.name), key.is_diff) not in known:
            checks.append(Check(name, canonical(key.name), key.output_name, _failure_rule(failure),
                                _value(failure.metric_value), False, key.is_diff, failure.message.strip()))
    return Gate(blessed=blessed, has_baseline=has_baseline,
                baseline_note=baseline_note or ("" if has_baseline else NO_BASELINE),
                slices=slices, checks=checks, problems=problems)


def _check(slice_: str, key: Any, threshold: Any, value: float | None, failure: Any) -> Check:
    rule = describe_threshold(threshold)
    metric = canonical(key.name)
    if failure is not None:
        note = failure.message.strip()
        failed_value = _value(failure.metric_value)
        return Check(slice_, metric, key.output_name, rule, value if failed_value is None else failed_value,
                     False, key.is_diff, note)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Check(slice_, metric, key.output_name, rule, None, None, key.is_diff, "no value recorded")
    return Check(slice_, metric, key.output_name, rule, value, True, key.is_diff)


def _failure_rule(failure: Any) -> str:
    t = failure.metric_threshold
    if t.HasField("value_threshold"):
        return describe_threshold(t.value_threshold)
    if t.HasField("change_threshold"):
        return describe_threshold(t.change_threshold)
    return "threshold"


def _spec_text(spec: Any) -> str:
    keys = list(spec.feature_keys) + [f"{k} = {v}" for k, v in spec.feature_values.items()]
    return "by " + ", ".join(keys) if keys else "overall"


def _applies(slice_spec: Any, name: str, metrics: Iterable[Any]) -> bool:
    """Whether a per-slice threshold's SlicingSpec covers the slice called `name`."""
    spec = tfma.slicer.SingleSliceSpec(spec=slice_spec)
    for record in metrics:
        if slice_name(record.slice_key) == name:
            return spec.is_slice_applicable(tfma.slicer.deserialize_slice_key(record.slice_key))
    return False
