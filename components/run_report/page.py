"""What a report page is made of: the plain data it shows and the HTML building blocks of every section.

Pure (no TensorFlow, no files, no clock). The data classes are filled by the executor (results.py
reads the Evaluator, crops.py makes the samples); the helpers are the only way text reaches the
page (`e` escapes everything) and the one place numbers are formatted, so sections stay consistent.
"""
from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# Canonical metric names on the page and on the artifact. TFMA names a metric class without a
# configured name by snake-casing it (InputPSNR -> input_psnr); results.py maps that to these.
PSNR, SSIM = "psnr", "ssim"
PSNR_INPUT, SSIM_INPUT = "psnr_input", "ssim_input"
PSNR_GAIN, SSIM_GAIN = "psnr_gain", "ssim_gain"
PSNR_POOLED, PSNR_POOLED_INPUT, PSNR_POOLED_GAIN = "psnr_pooled", "psnr_pooled_input", "psnr_pooled_gain"
MS_SSIM, MS_SSIM_INPUT, MS_SSIM_GAIN = "ms_ssim", "ms_ssim_input", "ms_ssim_gain"
# (label, model, phone input, gain): the rows of every quality table, in this order.
QUALITY_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("PSNR (mean of per-image)", PSNR, PSNR_INPUT, PSNR_GAIN),
    ("PSNR (pooled MSE)", PSNR_POOLED, PSNR_POOLED_INPUT, PSNR_POOLED_GAIN),
    ("SSIM", SSIM, SSIM_INPUT, SSIM_GAIN),
    ("MS-SSIM", MS_SSIM, MS_SSIM_INPUT, MS_SSIM_GAIN),
)
METRICS_NOTE = ("PSNR (mean of per-image): the average of each image's PSNR, as the PIRM 2018 challenge scored "
                "patches. PSNR (pooled MSE): the PSNR of the mean squared error over every pixel of the set "
                "(DPED's training logs pool each test batch so). MS-SSIM: up to 5 scales with the 11x11 window at "
                "each; patches under 161 px get fewer (100 px: 4, 50 px: 3), so it is the full index only on "
                "large images.")
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
    ms_ssim_phone: float | None = None  # None also when the crop is under 11 px
    ms_ssim_model: float | None = None


@dataclass
class FullPhoto:
    """One held-out photo enhanced at full resolution; images are encoded and downscaled for display only."""

    name: str  # file name
    size: tuple[int, int]  # (height, width) at full resolution, as enhanced
    display_size: tuple[int, int]  # (height, width) of the JPEGs on the page
    phone_jpeg: bytes
    enhanced_jpeg: bytes
    dslr_jpeg: bytes | None  # None: no DSLR photo of that name
    zoom_box: tuple[int, int, int, int]  # (top, left, height, width) of the centre crop, full-resolution pixels
    zoom_scale: int  # the crops are shown this many times larger (nearest neighbour)
    phone_zoom_png: bytes
    enhanced_zoom_png: bytes
    dslr_zoom_png: bytes | None  # None also when the DSLR photo is not pixel-aligned (other size)
    seconds: float  # time to enhance it at full resolution
    psnr_phone: float | None = None  # whole photo vs the DSLR photo, when pixel-aligned
    psnr_model: float | None = None
    dslr_note: str = ""  # e.g. why the DSLR photo has no crop or score


@dataclass
class Plot:
    """One inline plot: an SVG document (matplotlib) and what it shows."""

    anchor: str  # HTML id, e.g. "curve-validation-psnr"
    title: str
    svg: bytes
    caption: str = ""


@dataclass
class GainSummary:
    """Per-patch PSNR gain (enhanced minus phone, both against the DSLR patch) over one split, in dB."""

    split: str
    patches: int  # patches with a finite gain (the histogram's count)
    split_pairs: int  # patches of the split with a pixel-aligned DSLR target
    sampled: bool  # True: a seeded sample of split_pairs, False: all of them
    worse: int  # gain < 0
    worse_by: dict[str, int]  # e.g. {"0.5": n, "1": n, "2": n}: gain < -threshold dB
    mean: float
    median: float
    p5: float  # 5th percentile
    p95: float
    worst: list[tuple[int, str, float, float]]  # (position in the split, source, phone PSNR, gain), worst first
    histogram: Plot
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> patches left out


@dataclass
class ReportData:
    """Everything on the page. Optional parts are None (or empty) when their input was not given."""

    title: str
    gate: Gate
    run_info: dict[str, Any] = field(default_factory=dict)
    tflite: dict[str, Any] | None = None  # tflite_results.json as written by export/tflite_checks.py
    tflite_path: str = ""
    ingest: dict[str, Any] | None = None  # summary.json as written by the image ExampleGen
    rejects_preview: list[dict[str, Any]] = field(default_factory=list)
    rejects_total: int = 0
    crops: list[Crop] = field(default_factory=list)
    crops_note: str = ""
    photos: list[FullPhoto] = field(default_factory=list)
    photos_note: str = ""  # which model enhanced them, or why there are none
    curves: list[Plot] = field(default_factory=list)
    curves_note: str = ""
    gain: GainSummary | None = None
    gain_note: str = ""
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


def tag(name: str, inner: str, cls: str = "") -> str:
    """<name class="cls">inner</name>; `inner` is HTML already built with e() / tag()."""
    attr = f' class="{e(cls)}"' if cls else ""
    return f"<{name}{attr}>{inner}</{name}>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """Headers are text (escaped here); cells are HTML already built with e()/tag()."""
    head = "".join(tag("th", e(h)) for h in headers)
    body = "".join("<tr>" + "".join(tag("td", c) for c in row) + "</tr>" for row in rows)
    return f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def status(passed: bool | None, yes: str = "pass", no: str = "FAIL", unknown: str = "not checked") -> str:
    """A pass / FAIL / not-checked marker, coloured by the page style."""
    if passed is None:
        return tag("span", e(unknown), "muted")
    return tag("span", e(yes), "ok") if passed else tag("span", e(no), "bad")


def num(metric: str, value: Any, signed: bool = False) -> str:
    """A right-aligned metric value formatted by `fmt`."""
    return f'<span class="num">{e(fmt(metric, value, signed))}</span>'


def data_img(content: bytes, mime: str, alt: str, attrs: str = "") -> str:
    """<img> with `content` inlined as a base64 data URI (mime: image/png, image/jpeg, image/svg+xml)."""
    uri = f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"
    return f'<img alt="{e(alt)}" src="{uri}"{" " + attrs if attrs else ""}>'


def section(anchor: str, title: str, body: str) -> str:
    """One <section id=anchor> with its <h2> title; `body` is HTML already built."""
    return f'<section id="{e(anchor)}">{tag("h2", e(title))}{body}</section>'


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
