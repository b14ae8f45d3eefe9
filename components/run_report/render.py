"""The run report page: plain data in, one self-contained HTML string out.

Pure (no TensorFlow, no files, no clock), so the page can be tested and restyled without running
a model, and the executor stays a thin adapter. Images arrive as PNG bytes and are inlined as
base64 data URIs: the single index.html opens offline, can be mailed or attached to a ticket, and
needs no JavaScript or external resource. Every piece of text goes through `html.escape`.
"""
from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# Canonical metric names on the page and on the artifact. TFMA names a metric class without a
# configured name by snake-casing it (InputPSNR -> input_psnr); results.py maps that to these.
PSNR, SSIM = "psnr", "ssim"
PSNR_INPUT, SSIM_INPUT = "psnr_input", "ssim_input"
PSNR_GAIN, SSIM_GAIN = "psnr_gain", "ssim_gain"
OVERALL = "Overall"


@dataclass(frozen=True)
class Check:
    """One blessing threshold applied to one slice."""

    slice: str
    metric: str  # canonical name, e.g. "psnr_gain"
    output: str  # model output the metric is computed on, e.g. "enhanced_and_input"
    rule: str  # readable threshold, e.g. ">= 0" or "change vs baseline >= -0.5"
    value: float | None  # the metric (value threshold) or its change vs the baseline (change threshold)
    passed: bool | None  # None: not checked (e.g. no value for it)
    is_change: bool = False
    note: str = ""


@dataclass
class SliceQuality:
    """Candidate, baseline and change-vs-baseline metric values of one slice, by canonical name."""

    name: str
    candidate: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    diff: dict[str, float] = field(default_factory=dict)


@dataclass
class Gate:
    """What the Evaluator decided and everything needed to say why."""

    blessed: bool
    has_baseline: bool
    baseline_note: str  # where the baseline came from, or why there is none
    slices: list[SliceQuality] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # validation problems that are not a threshold


@dataclass
class Crop:
    """One before / after / DSLR sample; images are PNG bytes already upscaled by `scale`."""

    label: str  # e.g. "source iphone, example 3"
    phone_png: bytes
    enhanced_png: bytes
    dslr_png: bytes | None  # None when the example has no pixel-aligned DSLR image
    size: tuple[int, int]  # (height, width) of the crop before upscaling
    scale: int
    psnr_phone: float | None = None  # phone vs DSLR
    psnr_model: float | None = None  # enhanced vs DSLR


@dataclass
class ReportData:
    """Everything on the page. Optional parts are None (or empty) when their input was not given."""

    title: str
    gate: Gate
    run_info: dict[str, Any] = field(default_factory=dict)
    tflite: dict[str, Any] | None = None  # tflite_results.json as written by export/tflite.py
    tflite_path: str = ""
    ingest: dict[str, Any] | None = None  # summary.json as written by the image ExampleGen
    rejects_preview: list[dict[str, Any]] = field(default_factory=list)
    rejects_total: int = 0
    crops: list[Crop] = field(default_factory=list)
    crops_note: str = ""
    paths: dict[str, str] = field(default_factory=dict)  # artifact name -> uri, for the footer


def e(value: Any) -> str:
    """Escaped text; the only way text reaches the page."""
    return html.escape(str(value), quote=True)


def fmt(metric: str, value: Any, signed: bool = False) -> str:
    """A metric value as a reader wants it: PSNR-like in dB with 2 decimals, others 4 decimals."""
    if value is None or value == "":
        return "n/a"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return ("+" if v > 0 and signed else "" if v > 0 else "-") + "inf"
    sign = "+" if signed else ""
    if "psnr" in metric:
        return f"{v:{sign}.2f} dB"
    return f"{v:{sign}.4f}"


def _tag(name: str, inner: str, cls: str = "") -> str:
    attr = f' class="{e(cls)}"' if cls else ""
    return f"<{name}{attr}>{inner}</{name}>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """Headers are text (escaped here); cells are HTML already built with e()/_tag()."""
    head = "".join(_tag("th", e(h)) for h in headers)
    body = "".join("<tr>" + "".join(_tag("td", c) for c in row) + "</tr>" for row in rows)
    return f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _status(passed: bool | None, yes: str = "pass", no: str = "FAIL", unknown: str = "not checked") -> str:
    if passed is None:
        return _tag("span", e(unknown), "muted")
    return _tag("span", e(yes), "ok") if passed else _tag("span", e(no), "bad")


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1150px;
padding:0 16px 40px;color:#1d2430;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #dde;padding-bottom:4px}
.decision{padding:14px 18px;margin:16px 0;border-radius:8px;border:2px solid}
.decision.blessed{background:#e9f7ec;border-color:#2f9e44}.decision.not-blessed{background:#fdecec;border-color:#c92a2a}
.verdict{font-size:1.4em;font-weight:700;margin:.2em 0}
table{border-collapse:collapse;margin:8px 0;font-size:.92em}
th,td{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f6}td.num,.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#2b8a3e;font-weight:600}.bad{color:#c92a2a;font-weight:700}.muted{color:#778}
dl.info{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dl.info dt{font-weight:600}dl.info dd{margin:0}
code{background:#f4f5f7;padding:0 3px;border-radius:3px;word-break:break-all}
.crops{display:flex;flex-direction:column;gap:18px}
figure.crop{margin:0}figure.crop .row{display:flex;gap:8px;flex-wrap:wrap}
figure.crop .cell{display:flex;flex-direction:column;align-items:center;font-size:.85em}
figure.crop img{image-rendering:pixelated;border:1px solid #ccd}
.placeholder{display:flex;align-items:center;justify-content:center;border:1px dashed #aab;color:#778;
font-size:.85em;text-align:center}
footer{margin-top:2em;font-size:.8em;color:#667}
"""


def render_page(data: ReportData) -> str:
    """The whole page; sections for absent inputs say so instead of disappearing silently."""
    sections = [
        _decision(data.gate, data.title),
        _run_info(data.run_info),
        _quality(data.gate),
        _checks(data.gate),
        _baseline(data.gate),
        _tflite(data.tflite, data.tflite_path),
        _ingest(data.ingest, data.rejects_preview, data.rejects_total),
        _crops(data.crops, data.crops_note),
        _footer(data.paths),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(data.title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


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


def _decision(gate: Gate, title: str) -> str:
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
    headline = ""
    if overall is not None:
        c = overall.candidate
        headline = _tag("p", e(
            f"Overall: PSNR {fmt(PSNR, c.get(PSNR))} (phone input {fmt(PSNR, c.get(PSNR_INPUT))}), "
            f"SSIM {fmt(SSIM, c.get(SSIM))} (phone input {fmt(SSIM, c.get(SSIM_INPUT))})"), "headline")
    items = "".join(_tag("li", e(r)) for r in why)
    return (f'<header class="decision {cls}">{_tag("h1", e(title))}'
            f'{_tag("p", e(verdict), "verdict")}<ul class="reasons">{items}</ul>'
            f'{headline}{_tag("p", e(gate.baseline_note), "baseline-note")}</header>')


def _run_info(info: dict[str, Any]) -> str:
    if not info:
        return _tag("section", _tag("h2", "Run") + _tag("p", "no run information given", "muted"))
    rows = "".join(_tag("dt", e(k)) + _tag("dd", e(v if isinstance(v, str) else json.dumps(v, sort_keys=True)))
                   for k, v in info.items())
    return f'<section id="run"><h2>Run</h2><dl class="info">{rows}</dl></section>'


def _num(metric: str, value: Any, signed: bool = False) -> str:
    return f'<span class="num">{e(fmt(metric, value, signed))}</span>'


def _quality(gate: Gate) -> str:
    """Per slice: the phone input, the model, and what the model adds, for PSNR and SSIM."""
    slice_ok: dict[str, bool | None] = {}
    for c in gate.checks:
        if c.passed is not None:
            slice_ok[c.slice] = slice_ok.get(c.slice, True) and c.passed
    rows = []
    for s in gate.slices:
        c = s.candidate
        rows.append([e(s.name),
                     _num(PSNR, c.get(PSNR_INPUT)), _num(PSNR, c.get(PSNR)), _num(PSNR, c.get(PSNR_GAIN), True),
                     _num(SSIM, c.get(SSIM_INPUT)), _num(SSIM, c.get(SSIM)), _num(SSIM, c.get(SSIM_GAIN), True),
                     _status(slice_ok.get(s.name))])
    headers = ["Slice", "PSNR phone input", "PSNR model", "PSNR gain", "SSIM phone input", "SSIM model",
               "SSIM gain", "Thresholds"]
    body = _table(headers, rows, "quality") if rows else _tag("p", "the evaluation holds no metrics", "bad")
    return ('<section id="quality"><h2>Quality per slice (vs the DSLR photo)</h2>'
            + _tag("p", e("Phone input: the untouched phone photo scored against the DSLR target; "
                          "the gain is what the model adds."), "muted") + body + "</section>")


def _checks(gate: Gate) -> str:
    rows = [[e(c.slice), e(c.metric), e(c.output), e(c.rule), _num(c.metric, c.value, c.is_change),
             _status(c.passed) + (" " + _tag("span", e(c.note), "muted") if c.note else "")]
            for c in gate.checks]
    body = (_table(["Slice", "Metric", "Output", "Threshold", "Value", "Result"], rows, "checks") if rows
            else _tag("p", "no thresholds were checked", "muted"))
    problems = "".join(_tag("li", e(p)) for p in gate.problems)
    return ('<section id="thresholds"><h2>Blessing thresholds</h2>' + body
            + (f'<ul class="problems">{problems}</ul>' if problems else "") + "</section>")


def _baseline(gate: Gate) -> str:
    head = '<section id="baseline"><h2>Against the baseline (latest blessed model)</h2>'
    if not gate.has_baseline:
        return head + _tag("p", e(gate.baseline_note)) + "</section>"
    rows = []
    for s in gate.slices:
        for metric in (PSNR, SSIM, PSNR_GAIN, SSIM_GAIN):
            if metric in s.candidate or metric in s.baseline:
                rows.append([e(s.name), e(metric), _num(metric, s.candidate.get(metric)),
                             _num(metric, s.baseline.get(metric)), _num(metric, s.diff.get(metric), True)])
    return (head + _tag("p", e(gate.baseline_note))
            + _table(["Slice", "Metric", "Candidate", "Baseline", "Change"], rows, "baseline") + "</section>")


def _size(n: Any) -> str:
    if n is None:
        return "n/a"
    n = int(n)
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


VARIANT_ORDER = ("float32", "float16", "dynamic_int8", "int8")  # export/tflite.py's order: reference first


def _variant_order(name: str) -> tuple[int, str]:
    return (VARIANT_ORDER.index(name) if name in VARIANT_ORDER else len(VARIANT_ORDER), name)


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _small(value: Any) -> str:
    """Max abs differences span 0 to 1e-7 and below: three significant digits, not fixed decimals."""
    return "n/a" if value is None else f"{float(value):.3g}"


def _tflite(results: dict[str, Any] | None, path: str) -> str:
    head = '<section id="tflite"><h2>TFLite variants</h2>'
    if results is None:
        return head + _tag("p", "no TFLite export in this run", "muted") + "</section>"
    parts = [head]
    if path:
        parts.append(_tag("p", "results: " + _tag("code", e(path)), "muted"))
    if results.get("reason"):
        parts.append(_tag("p", e(results["reason"])))
    variants: dict[str, Any] = results.get("variants") or {}
    rows = []
    for name, v in sorted(variants.items(), key=lambda kv: _variant_order(kv[0])):
        size = v.get("input_size")
        latency = "n/a" if v.get("latency_ms") is None else _ms(float(v["latency_ms"])) + (
            f" @ {size[0]}x{size[1]}" if size else "")
        verdict = (_tag("span", "shipped", "ok") if v.get("passed") else _tag("span", "failed", "bad"))
        rows.append([e(name), _tag("span", e(_size(v.get("size_bytes"))), "num"),
                     _num(PSNR, v.get("parity_psnr")) + _tag("span", e(f" (min {fmt(PSNR, v.get('min_parity_psnr'))})"),
                                                             "muted"),
                     _tag("span", e(_small(v.get("parity_max_abs"))), "num"),
                     _num(PSNR, v.get("psnr")), _num(SSIM, v.get("ssim")), e(latency),
                     verdict + " " + e(v.get("reason", ""))])
    if rows:
        parts.append(_table(["Variant", "Size", "Parity PSNR vs SavedModel", "Max abs diff", "PSNR vs DSLR",
                             "SSIM vs DSLR", "Latency (CPU)", "Result"], rows, "tflite"))
    reference = results.get("reference") or {}
    if reference:
        ref_rows = [[e(k.replace("_", " ")), _num(PSNR, q.get("psnr")), _num(SSIM, q.get("ssim"))]
                    for k, q in reference.items() if isinstance(q, dict)]
        parts.append(_tag("p", e(f"Reference on the same {results.get('paired_eval_images', '?')} paired "
                                 f"held-out image(s):"), "muted"))
        parts.append(_table(["Model", "PSNR vs DSLR", "SSIM vs DSLR"], ref_rows, "reference"))
    shipped = results.get("shipped")
    if shipped is not None:
        parts.append(_tag("p", e("shipped: " + (", ".join(shipped) or "none"))))
    return "".join(parts) + "</section>"


def _counts_table(title: str, counts: dict[str, Any]) -> str:
    rows = [[e(k), _tag("span", e(v), "num")] for k, v in counts.items()]
    return _table([title, "Count"], rows, "counts") if rows else ""


def _ingest(summary: dict[str, Any] | None, rejects: list[dict[str, Any]], total: int) -> str:
    head = '<section id="ingest"><h2>Ingest</h2>'
    if summary is None:
        return head + _tag("p", "no ingest report given", "muted") + "</section>"
    files = summary.get("files", {})
    parts = [head, _tag("p", e(f"status {summary.get('status', '?')}: {files.get('seen', '?')} image files seen, "
                                f"{files.get('kept', '?')} kept, {files.get('rejected', '?')} set aside "
                                f"({float(summary.get('reject_fraction', 0.0)):.1%}), "
                                f"{files.get('ignored', '?')} other files ignored"))]
    if summary.get("error"):
        parts.append(_tag("p", e(summary["error"]), "bad"))
    parts += [_tag("p", e("warning: " + w), "bad") for w in summary.get("warnings", [])]
    parts.append(_counts_table("Examples per split", summary.get("examples", {})))
    parts.append(_counts_table("Set aside, by reason", summary.get("rejects", {}))
                 or _tag("p", "nothing set aside", "muted"))
    parts.append(_counts_table("Normalised, by kind", summary.get("normalised", {})))
    where = summary.get("rejects_file", "")
    if where:
        link = (f'<a href="file://{e(where)}"><code>{e(where)}</code></a>' if where.startswith("/")
                else _tag("code", e(where)))
        parts.append(_tag("p", "one line per set-aside file: " + link))
    if rejects:
        rows = [[_tag("code", e(r.get("path", ""))), e(r.get("split", "")), e(r.get("reason", "")),
                 e(r.get("detail", ""))] for r in rejects]
        more = f" (first {len(rejects)} of {total})" if total > len(rejects) else ""
        parts.append(_tag("p", e(f"Set-aside files{more}:"), "muted"))
        parts.append(_table(["File", "Split", "Reason", "Detail"], rows, "rejects"))
    return "".join(parts) + "</section>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _crops(crops: list[Crop], note: str) -> str:
    head = '<section id="samples"><h2>Before / after / DSLR</h2>'
    if note:
        head += _tag("p", e(note), "muted")
    if not crops:
        return head + _tag("p", "no samples to show", "muted") + "</section>"
    figures = []
    for i, crop in enumerate(crops):
        h, w = crop.size
        dslr = (_img(crop.dslr_png, f"DSLR {i}") if crop.dslr_png is not None else
                f'<div class="placeholder" style="width:{w * crop.scale}px;height:{h * crop.scale}px">'
                "no paired DSLR image</div>")
        cells = [("phone (before)", _img(crop.phone_png, f"phone {i}"), crop.psnr_phone),
                 ("model (after)", _img(crop.enhanced_png, f"enhanced {i}"), crop.psnr_model),
                 ("DSLR (target)", dslr, None)]
        row = "".join(f'<div class="cell">{img}<span>{e(label)}'
                      + (f": {e(fmt(PSNR, score))} vs DSLR" if score is not None else "") + "</span></div>"
                      for label, img, score in cells)
        caption = f"{crop.label}: {h}x{w} px shown at {crop.scale}x (nearest neighbour)"
        figures.append(f'<figure class="crop"><div class="row">{row}</div>'
                       f'{_tag("figcaption", e(caption))}</figure>')
    return head + '<div class="crops">' + "".join(figures) + "</div></section>"


def _footer(paths: dict[str, str]) -> str:
    items = "".join(_tag("li", e(f"{k}: ") + _tag("code", e(v))) for k, v in paths.items() if v)
    return f"<footer><p>Artifacts of this run:</p><ul>{items}</ul></footer>"
