"""The ingest report: what came in, what was fixed, what was set aside, and whether that is too much.

The verdict is a pure function of the counts, computed where the counts are combined (inside
Beam) and written into summary.json; the executor only reads it back. So the run fails the same
way on every runner, and the file a user opens says exactly why it failed.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Mapping

import tensorflow as tf

from phone2dslr import features as F
from phone2dslr.components.image_example_gen.layout import IngestOptions

REJECTS_FILE = "rejects.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_TEXT = "summary.txt"
FILE_COUNTS = ("seen", "kept", "rejected", "ignored")


def _group(counts: Mapping[str, int], prefix: str) -> dict[str, int]:
    return {k[len(prefix) + 1:]: int(v) for k, v in sorted(counts.items()) if k.startswith(prefix + ".")}


def _top(reasons: Mapping[str, int], n: int = 4) -> str:
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k}: {v}" for k, v in ranked[:n])
    return text + (", ..." if len(ranked) > n else "")


def build_summary(counts: Mapping[str, int], options: IngestOptions, report_uri: str) -> dict:
    """Counts grouped for people, plus the verdict: status "ok" or "failed" with a one-line error."""
    files = {name: int(counts.get(f"files.{name}", 0)) for name in FILE_COUNTS}
    examples = {s: int(counts.get(f"examples.{s}", 0)) for s in F.SPLITS}
    rejects = _group(counts, "rejects")
    fraction = files["rejected"] / files["seen"] if files["seen"] else 0.0
    where = f"see {os.path.join(report_uri, REJECTS_FILE)}"
    kept = f"{files['kept']} of {files['seen']} image files kept"
    error = ""
    if files["seen"] == 0:
        error = f"image ExampleGen: no image files found in the {options.layout} folders under {options.input_base}"
    elif sum(examples.values()) == 0 or examples[F.TRAIN] == 0:
        what = "no usable examples" if sum(examples.values()) == 0 else "no training examples"
        error = f"image ExampleGen: {what}: {kept}, {files['rejected']} set aside ({_top(rejects)}); {where}"
    elif fraction > options.max_reject_fraction:
        error = (f"image ExampleGen: {files['rejected']} of {files['seen']} image files ({fraction:.0%}) were set "
                 f"aside, more than max_reject_fraction {options.max_reject_fraction:g} ({_top(rejects)}); {where}")
    return {
        "status": "failed" if error else "ok",
        "error": error,
        "warnings": [f"split {s!r} has no examples" for s, n in examples.items() if n == 0],
        "examples": examples,
        "pairs_kept": {s: int(counts.get(f"pairs_kept.{s}", 0)) for s in F.SPLITS},
        "single_images_kept": _group(counts, "singles_kept"),
        "files": files,
        "reject_fraction": round(fraction, 6),
        "normalised": _group(counts, "normalised"),
        "rejects": rejects,
        "rejects_file": os.path.join(report_uri, REJECTS_FILE),
        "options": dataclasses.asdict(options),
    }


def summary_text(summary: dict) -> str:
    """A few lines a person reads first; the JSON holds the same numbers."""
    o, f = summary["options"], summary["files"]
    patches = (f"patch {o['patch_size']}, " + (f"{o['patches_per_image']} random per image"
               if o["patches_per_image"] else f"stride {o['patch_stride'] or o['patch_size']}")
               if o["patch_size"] else "whole images")
    lines = [
        f"image ExampleGen: {summary['status'].upper()}" + (f" - {summary['error']}" if summary["error"] else ""),
        f"input: {o['input_base']} (layout {o['layout']}, phone {o['phone']}, pairing {o['pairing']}, {patches})",
        "examples: " + ", ".join(f"{k} {v}" for k, v in summary["examples"].items()),
        "pairs kept: " + ", ".join(f"{k} {v}" for k, v in summary["pairs_kept"].items()),
        f"files: {f['seen']} images seen, {f['kept']} kept, {f['rejected']} set aside "
        f"({summary['reject_fraction']:.1%}), {f['ignored']} other files ignored",
        "normalised: " + (", ".join(f"{k} {v}" for k, v in summary["normalised"].items()) or "none"),
        "set aside: " + (", ".join(f"{k} {v}" for k, v in summary["rejects"].items()) or "none")
        + f" (one line per file in {summary['rejects_file']})",
    ]
    if summary["single_images_kept"]:
        lines.insert(4, "single images kept: " + ", ".join(f"{k} {v}" for k, v in summary["single_images_kept"].items()))
    lines += [f"warning: {w}" for w in summary["warnings"]]
    return "\n".join(lines) + "\n"


def write_summary(counts: Mapping[str, int], options: IngestOptions, report_uri: str) -> dict:
    summary = build_summary(counts, options, report_uri)
    tf.io.gfile.makedirs(report_uri)
    with tf.io.gfile.GFile(os.path.join(report_uri, SUMMARY_JSON), "w") as f:
        f.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    with tf.io.gfile.GFile(os.path.join(report_uri, SUMMARY_TEXT), "w") as f:
        f.write(summary_text(summary))
    return summary


def read_summary(report_uri: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(report_uri, SUMMARY_JSON)) as f:
        return json.load(f)
