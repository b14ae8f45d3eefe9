"""The run report page: plain data in, one self-contained HTML string out.

Pure (no TensorFlow, no files, no clock), so the page can be tested and restyled without running
a model, and the executor stays a thin adapter. Images arrive as PNG, JPEG or SVG bytes and are
inlined as base64 data URIs: the single index.html opens offline, can be mailed or attached to a
ticket, and loads no external resource; its only script is the before/after slider's inline
`oninput` attribute. Every piece of text goes through `page.e` (html.escape).

The page is the list in `render_page`, one function per section, top to bottom: the model-quality
sections live in quality_sections.py, the pictures (full-size photos, gain histogram, training
curves) in visual_sections.py, the inputs' sections (run, ingest, samples) here. A new
section is a function returning one `page.section(...)` string and one line in that list; data it
needs goes on `ReportData` (page.py) with a default, so a run without it still renders.
"""
from __future__ import annotations

import base64
import json
from typing import Any

from phone2dslr.components.run_report import quality_sections as qs
from phone2dslr.components.run_report import visual_sections as vs
from phone2dslr.components.run_report.page import (  # noqa: F401  (re-exported: the page's data types)
    OVERALL, PSNR, STYLE, Check, Crop, FullPhoto, GainSummary, Gate, Plot, ReportData, SliceQuality, e, fmt, section,
    table, tag)

failure_reasons = qs.failure_reasons  # re-exported: the executor and tests word reasons the same way


def render_page(data: ReportData) -> str:
    """The whole page as one HTML string; sections for absent inputs say so instead of disappearing."""
    sections = [
        qs.decision(data.gate, data.title),
        _run_info(data.run_info),
        qs.quality(data.gate),
        vs.photos(data.photos, data.photos_note),
        vs.gain(data.gain, data.gain_note),
        vs.curves(data.curves, data.curves_note),
        qs.checks(data.gate),
        qs.baseline(data.gate),
        qs.tflite(data.tflite, data.tflite_path),
        _ingest(data.ingest, data.rejects_preview, data.rejects_total),
        _crops(data.crops, data.crops_note),
        _footer(data.paths),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(data.title)}</title><style>{STYLE}{vs.STYLE}</style></head>\n<body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def _run_info(info: dict[str, Any]) -> str:
    if not info:
        return tag("section", tag("h2", "Run") + tag("p", "no run information given", "muted"))
    rows = "".join(tag("dt", e(k)) + tag("dd", e(v if isinstance(v, str) else json.dumps(v, sort_keys=True)))
                   for k, v in info.items())
    return section("run", "Run", f'<dl class="info">{rows}</dl>')


def _counts_table(title: str, counts: dict[str, Any]) -> str:
    rows = [[e(k), tag("span", e(v), "num")] for k, v in counts.items()]
    return table([title, "Count"], rows, "counts") if rows else ""


def _ingest(summary: dict[str, Any] | None, rejects: list[dict[str, Any]], total: int) -> str:
    if summary is None:
        return section("ingest", "Ingest", tag("p", "no ingest report given", "muted"))
    files = summary.get("files", {})
    parts = [tag("p", e(f"status {summary.get('status', '?')}: {files.get('seen', '?')} image files seen, "
                        f"{files.get('kept', '?')} kept, {files.get('rejected', '?')} set aside "
                        f"({float(summary.get('reject_fraction', 0.0)):.1%}), "
                        f"{files.get('ignored', '?')} other files ignored"))]
    if summary.get("error"):
        parts.append(tag("p", e(summary["error"]), "bad"))
    parts += [tag("p", e("warning: " + w), "bad") for w in summary.get("warnings", [])]
    parts.append(_counts_table("Examples per split", summary.get("examples", {})))
    parts.append(_counts_table("Set aside, by reason", summary.get("rejects", {}))
                 or tag("p", "nothing set aside", "muted"))
    parts.append(_counts_table("Normalised, by kind", summary.get("normalised", {})))
    where = summary.get("rejects_file", "")
    if where:
        link = (f'<a href="file://{e(where)}"><code>{e(where)}</code></a>' if where.startswith("/")
                else tag("code", e(where)))
        parts.append(tag("p", "one line per set-aside file: " + link))
    if rejects:
        rows = [[tag("code", e(r.get("path", ""))), e(r.get("split", "")), e(r.get("reason", "")),
                 e(r.get("detail", ""))] for r in rejects]
        more = f" (first {len(rejects)} of {total})" if total > len(rejects) else ""
        parts.append(tag("p", e(f"Set-aside files{more}:"), "muted"))
        parts.append(table(["File", "Split", "Reason", "Detail"], rows, "rejects"))
    return section("ingest", "Ingest", "".join(parts))


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _score(psnr: float | None, ms_ssim: float | None) -> str:
    """': 21.30 dB, MS-SSIM 0.8123 vs DSLR' for a sample cell ('' without a DSLR image)."""
    if psnr is None:
        return ""
    return f": {fmt(PSNR, psnr)}" + (f", MS-SSIM {fmt('ms_ssim', ms_ssim)}" if ms_ssim is not None else "") + " vs DSLR"


def _crops(crops: list[Crop], note: str) -> str:
    head = tag("p", e(note), "muted") if note else ""
    if not crops:
        return section("samples", "Before / after / DSLR", head + tag("p", "no samples to show", "muted"))
    figures = []
    for i, crop in enumerate(crops):
        h, w = crop.size
        dslr = (_img(crop.dslr_png, f"DSLR {i}") if crop.dslr_png is not None else
                f'<div class="placeholder" style="width:{w * crop.scale}px;height:{h * crop.scale}px">'
                "no paired DSLR image</div>")
        cells = [("phone (before)", _img(crop.phone_png, f"phone {i}"), _score(crop.psnr_phone, crop.ms_ssim_phone)),
                 ("model (after)", _img(crop.enhanced_png, f"enhanced {i}"),
                  _score(crop.psnr_model, crop.ms_ssim_model)),
                 ("DSLR (target)", dslr, "")]
        row = "".join(f'<div class="cell">{img}<span>{e(label + score)}</span></div>' for label, img, score in cells)
        caption = f"{crop.label}: {h}x{w} px shown at {crop.scale}x (nearest neighbour)"
        figures.append(f'<figure class="crop"><div class="row">{row}</div>'
                       f'{tag("figcaption", e(caption))}</figure>')
    return section("samples", "Before / after / DSLR", head + '<div class="crops">' + "".join(figures) + "</div>")


def _footer(paths: dict[str, str]) -> str:
    items = "".join(tag("li", e(f"{k}: ") + tag("code", e(v))) for k, v in paths.items() if v)
    return f"<footer><p>Artifacts of this run:</p><ul>{items}</ul></footer>"
