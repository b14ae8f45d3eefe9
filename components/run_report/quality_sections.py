"""The report's sections on model quality: the decision, quality per slice, thresholds, baseline, TFLite.

Each section is a function of plain data (page.py) returning one HTML string; render.py puts them
in order. Every quality table shows the same metrics (page.QUALITY_METRICS: per-image and pooled
PSNR, SSIM, MS-SSIM) for the model and the untouched phone input, and hides a row only when no
value of it was recorded (an evaluation from before a metric existed).
"""
from __future__ import annotations

from typing import Any

from phone2dslr.components.run_report.page import (
    METRICS_NOTE, MS_SSIM, OVERALL, PSNR, PSNR_GAIN, PSNR_POOLED, QUALITY_METRICS, SSIM, SSIM_GAIN, Check, Gate, e,
    fmt, num, section, status, table, tag)

VARIANT_ORDER = ("float32", "float16", "dynamic_int8", "int8", "fixed")  # export/tflite_convert.py's: reference first


def failure_reasons(gate: Gate) -> list[str]:
    """One sentence per failed threshold, grouping the slices it failed on; then other problems."""
    grouped: dict[tuple[str, str, str], list[Check]] = {}
    for check in gate.checks:
        if check.passed is False:
            grouped.setdefault((check.metric, check.output, check.rule), []).append(check)
    reasons = []
    for (metric, output, rule), checks in grouped.items():
        where = ", ".join(f"{c.slice} {fmt(metric, c.value, signed=checks[0].is_change)}" for c in checks)
        reasons.append(f"{metric} ({output}) fails threshold [{rule}] on: {where}")
    return reasons + list(gate.problems)


def _headline(values: dict[str, float]) -> str:
    """'PSNR .. (phone input ..), ...' for the metrics recorded, in QUALITY_METRICS order."""
    parts = []
    for label, model, phone, _ in QUALITY_METRICS:
        if model in values or phone in values:
            name = "pooled PSNR" if model == PSNR_POOLED else label.split(" (")[0]
            parts.append(f"{name} {fmt(model, values.get(model))} (phone input {fmt(model, values.get(phone))})")
    return ", ".join(parts)


def decision(gate: Gate, title: str) -> str:
    """The verdict, its reasons and the overall headline numbers, at the top of the page."""
    cls = "blessed" if gate.blessed else "not-blessed"
    verdict = "BLESSED: this model may be pushed" if gate.blessed else "NOT BLESSED: this model will not be pushed"
    reasons = failure_reasons(gate)
    checked = [c for c in gate.checks if c.passed is not None]
    if gate.blessed:
        slices = len({c.slice for c in checked})
        why = [f"all {len(checked)} threshold checks passed on {slices} slice(s)"] + reasons
    else:
        why = reasons or ["the Evaluator did not bless the model and recorded no failed threshold"]
    overall = next((s for s in gate.slices if s.name == OVERALL), None)
    headline = "" if overall is None else tag("p", e(f"Overall: {_headline(overall.candidate)}"), "headline")
    items = "".join(tag("li", e(r)) for r in why)
    return (f'<header class="decision {cls}">{tag("h1", e(title))}'
            f'{tag("p", e(verdict), "verdict")}<ul class="reasons">{items}</ul>'
            f'{headline}{tag("p", e(gate.baseline_note), "baseline-note")}</header>')


def quality(gate: Gate) -> str:
    """Per slice and metric: the phone input, the model, and what the model adds."""
    slice_ok: dict[str, bool | None] = {}
    for c in gate.checks:
        if c.passed is not None:
            slice_ok[c.slice] = slice_ok.get(c.slice, True) and c.passed
    rows = []
    for s in gate.slices:
        c = s.candidate
        shown = [m for m in QUALITY_METRICS if any(k in c for k in m[1:])]
        for i, (label, model, phone, gain) in enumerate(shown):
            rows.append([e(s.name) if i == 0 else "", e(label), num(model, c.get(phone)), num(model, c.get(model)),
                         num(model, c.get(gain), True), status(slice_ok.get(s.name)) if i == 0 else ""])
    body = (table(["Slice", "Metric", "Phone input", "Model", "Gain", "Thresholds"], rows, "quality") if rows
            else tag("p", "the evaluation holds no metrics", "bad"))
    note = tag("p", e("Phone input: the untouched phone photo scored against the DSLR target; the gain is what "
                      "the model adds. " + METRICS_NOTE), "muted")
    return section("quality", "Quality per slice (vs the DSLR photo)", note + body)


def checks(gate: Gate) -> str:
    """Every threshold TFMA applied, per slice, with its value and result."""
    rows = [[e(c.slice), e(c.metric), e(c.output), e(c.rule), num(c.metric, c.value, c.is_change),
             status(c.passed) + (" " + tag("span", e(c.note), "muted") if c.note else "")]
            for c in gate.checks]
    body = (table(["Slice", "Metric", "Output", "Threshold", "Value", "Result"], rows, "checks") if rows
            else tag("p", "no thresholds were checked", "muted"))
    problems = "".join(tag("li", e(p)) for p in gate.problems)
    return section("thresholds", "Blessing thresholds",
                   body + (f'<ul class="problems">{problems}</ul>' if problems else ""))


def baseline(gate: Gate) -> str:
    """Candidate vs the latest blessed model, per slice, for the metrics both have."""
    title = "Against the baseline (latest blessed model)"
    if not gate.has_baseline:
        return section("baseline", title, tag("p", e(gate.baseline_note)))
    rows = []
    for s in gate.slices:
        for metric in (PSNR, PSNR_POOLED, SSIM, MS_SSIM, PSNR_GAIN, SSIM_GAIN):
            if metric in s.candidate or metric in s.baseline:
                rows.append([e(s.name), e(metric), num(metric, s.candidate.get(metric)),
                             num(metric, s.baseline.get(metric)), num(metric, s.diff.get(metric), True)])
    return section("baseline", title, tag("p", e(gate.baseline_note))
                   + table(["Slice", "Metric", "Candidate", "Baseline", "Change"], rows, "baseline"))


def _size(n: Any) -> str:
    if n is None:
        return "n/a"
    n = int(n)
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def _variant_order(name: str) -> tuple[int, str]:
    return (VARIANT_ORDER.index(name) if name in VARIANT_ORDER else len(VARIANT_ORDER), name)


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _small(value: Any) -> str:
    """Max abs differences span 0 to 1e-7 and below: three significant digits, not fixed decimals."""
    return "n/a" if value is None else f"{float(value):.3g}"


def _tiling(v: dict[str, Any]) -> str:
    """Tiled vs whole-image PSNR of a variant and whether that is exact (tflite_tile_checks.py)."""
    if v.get("tiled_vs_whole_psnr") is None:
        return tag("span", e("n/a" + (f" ({v['tiling_note']})" if v.get("tiling_note") else "")), "muted")
    exact = tag("span", "exact", "ok") if v.get("tiles_exactly") else tag("span", "not exact", "muted")
    return num(PSNR, v["tiled_vs_whole_psnr"]) + " " + exact


def _gpu(v: dict[str, Any]) -> str:
    """The GPU delegate verdict of a variant (export/tflite_gpu.py) and its issues."""
    if v.get("gpu_compatible") is True:
        return tag("span", "compatible", "ok")
    issues = v.get("gpu_issues") or []
    if v.get("gpu_compatible") is False:
        return tag("span", "issues", "bad") + " " + e("; ".join(issues))
    return tag("span", e(f"unknown ({v.get('gpu_analyzer') or 'not checked'})"), "muted")


def _vs_dslr(q: dict[str, Any]) -> list[str]:
    """Per-image PSNR, pooled PSNR, SSIM, MS-SSIM cells of one results-file entry."""
    return [num(PSNR, q.get(PSNR)), num(PSNR, q.get(PSNR_POOLED)), num(SSIM, q.get(SSIM)), num(SSIM, q.get(MS_SSIM))]


_VS_DSLR_HEADERS = ["PSNR vs DSLR", "Pooled PSNR vs DSLR", "SSIM vs DSLR", "MS-SSIM vs DSLR"]


def tflite(results: dict[str, Any] | None, path: str) -> str:
    """Each TFLite variant's checks (tflite_results.json), and the SavedModel / phone-input reference."""
    title = "TFLite variants"
    if results is None:
        return section("tflite", title, tag("p", "no TFLite export in this run", "muted"))
    parts = []
    if path:
        parts.append(tag("p", "results: " + tag("code", e(path)), "muted"))
    if results.get("reason"):
        parts.append(tag("p", e(results["reason"])))
    variants: dict[str, Any] = results.get("variants") or {}
    rows = []
    for name, v in sorted(variants.items(), key=lambda kv: _variant_order(kv[0])):
        size = v.get("input_size")
        latency = "n/a" if v.get("latency_ms") is None else _ms(float(v["latency_ms"])) + (
            f" @ {size[0]}x{size[1]}" if size else "")
        verdict = (tag("span", "shipped", "ok") if v.get("passed") else tag("span", "failed", "bad"))
        fixed = v.get("fixed_size")
        label = e(name) + (tag("span", e(f" {fixed[0]}x{fixed[1]} input"), "muted") if fixed else "")
        subset = v.get("phone_input")
        if subset:  # scored on fewer images than the others: say so, with the phone input on those
            label += tag("span", e(f"; scored on {v.get('checked_images')} of {results.get('eval_images', '?')} "
                                   f"images, where the phone input has PSNR {fmt(PSNR, subset.get(PSNR))}, "
                                   f"SSIM {fmt(SSIM, subset.get(SSIM))}"), "muted")
        rows.append([label, tag("span", e(_size(v.get("size_bytes"))), "num"),
                     num(PSNR, v.get("parity_psnr")) + tag("span", e(f" (min {fmt(PSNR, v.get('min_parity_psnr'))})"),
                                                           "muted"),
                     tag("span", e(_small(v.get("parity_max_abs"))), "num"), *_vs_dslr(v), e(latency),
                     _tiling(v), _gpu(v), verdict + " " + e(v.get("reason", ""))])
    if rows:
        parts.append(table(["Variant", "Size", "Parity PSNR vs SavedModel", "Max abs diff", *_VS_DSLR_HEADERS,
                            "Latency (CPU)", "Tiled vs whole", "GPU delegate", "Result"], rows, "tflite"))
    reference = results.get("reference") or {}
    if reference:
        ref_rows = [[e(k.replace("_", " ")), *_vs_dslr(q)] for k, q in reference.items() if isinstance(q, dict)]
        parts.append(tag("p", e(f"Reference on the same {results.get('paired_eval_images', '?')} paired "
                                f"held-out image(s):"), "muted"))
        parts.append(table(["Model", *_VS_DSLR_HEADERS], ref_rows, "reference"))
    shipped = results.get("shipped")
    if shipped is not None:
        parts.append(tag("p", e("shipped: " + (", ".join(shipped) or "none"))))
    return section("tflite", title, "".join(parts))


__all__ = ["VARIANT_ORDER", "failure_reasons", "decision", "quality", "checks", "baseline", "tflite"]
