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
from phone2dslr.components.image_example_gen.layout import TRAIN_GROUP, IngestOptions
from phone2dslr.components.image_example_gen.splitting import SPLIT_BY, manifests

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


def by_source(counts: Mapping[str, int]) -> dict[str, dict[str, dict[str, int]]]:
    """{source: {split: {"examples", "photos", "scenes"}}} from the "by_source.<source>.<split>.<what>" counts.

    source is the camera: the phone folder name, or "dslr" for DSLR-only (unpaired) examples.
    """
    out: dict[str, dict[str, dict[str, int]]] = {}
    for key, value in _group(counts, "by_source").items():
        source, split, what = key.rsplit(".", 2)
        out.setdefault(source, {}).setdefault(split, {"examples": 0, "photos": 0, "scenes": 0})[what] = int(value)
    return {source: {s: splits[s] for s in F.SPLITS if s in splits} for source, splits in out.items()}


def split_summary(counts: Mapping[str, int], options: IngestOptions) -> tuple[dict, list[str]]:
    """How train/eval was decided (by scene, photo or file) and the warnings that calls for."""
    manifest = next(m for m in manifests(options) if m.group == TRAIN_GROUP)
    where = os.path.join(options.input_base, manifest.path)
    decided = {k: int(counts.get(f"split_by.{k}", 0)) for k in SPLIT_BY}
    split = {
        "rule": (f"training files are split into train/eval by a stable hash of their scene id (else photo id, else "
                 f"file id) from {where}; eval holds the {options.eval_percent}% of groups with the smallest hashes "
                 f"(at least one when there are two or more and eval_percent > 0)"),
        "decided_by": decided,
        "groups": {s: int(counts.get(f"split_groups.{s}", 0)) for s in (F.TRAIN, F.EVAL)},
        "manifest": {k: int(counts.get(f"manifest.{k}", 0)) for k in ("rows", "bad_rows", "unmatched")},
    }
    warnings = []
    listed = decided["scene"] + decided["photo"]
    if decided["file"] and (options.layout == "dped" or listed):
        warnings.append(f"{decided['file']} training name stems have no row in {where}: each was split as a photo of "
                        f"its own, so patches cut from one photo may be in both train and eval")
    if split["manifest"]["bad_rows"]:
        warnings.append(f"{split['manifest']['bad_rows']} rows of the photo manifests lack a name or a photo")
    if split["manifest"]["unmatched"]:
        warnings.append(f"{split['manifest']['unmatched']} photo manifest rows name no image file")
    return split, warnings


def entry_warnings(ignored: Mapping[str, int], escaped: int, where: str) -> list[str]:
    """Warnings for entries the user most likely meant to be read (listing.py's kinds)."""
    out = []
    if ignored.get("subfolder"):
        out.append(f"{ignored['subfolder']} images in sub-folders of the layout folders were not read "
                   f"(data.recursive is false); {where}")
    if ignored.get("not_layout"):
        out.append(f"{ignored['not_layout']} files or folders beside the layout's folders are not part of it "
                   f"and were not read; {where}")
    for kind in ("unlistable", "link_loop", "name_collision"):
        if ignored.get(kind):
            out.append(f"{ignored[kind]} entries ignored as {kind}; {where}")
    if escaped:
        out.append(f"{escaped} file or folder names are not valid UTF-8: their bytes are shown and stored "
                   f"escaped as \\xNN (for example caf\\xe9.jpg)")
    return out


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
    if error and rejects.get("no_partner") and options.layout == "unpaired" and options.pairing == "paired":
        # The likeliest cause: unpaired training folders read with the default pairing.
        error = error.replace(f"; {where}", f"; for unpaired trainA/trainB set data.pairing: unpaired; {where}")
    split, split_warnings = split_summary(counts, options)
    ignored = _group(counts, "ignored")
    return {
        "status": "failed" if error else "ok",
        "error": error,
        "warnings": ([f"split {s!r} has no examples" for s, n in examples.items() if n == 0] + split_warnings
                     + entry_warnings(ignored, int(counts.get("names.escaped", 0)), where)),
        "examples": examples,
        "split": split,
        "by_source": by_source(counts),
        "pairs_kept": {s: int(counts.get(f"pairs_kept.{s}", 0)) for s in F.SPLITS},
        "single_images_kept": _group(counts, "singles_kept"),
        "files": files,
        "ignored": ignored,
        "escaped_names": int(counts.get("names.escaped", 0)),
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
        f"input: {o['input_base']} (layout {o['layout']}, phone {o['phone']}, pairing {o['pairing']}, {patches}"
        + (", sub-folders read)" if o.get("recursive") else ")"),
        "examples: " + ", ".join(f"{k} {v}" for k, v in summary["examples"].items()),
        "pairs kept: " + ", ".join(f"{k} {v}" for k, v in summary["pairs_kept"].items()),
        f"files: {f['seen']} images seen, {f['kept']} kept, {f['rejected']} set aside "
        f"({summary['reject_fraction']:.1%}), {f['ignored']} other entries ignored"
        + (" (" + ", ".join(f"{k} {v}" for k, v in summary.get("ignored", {}).items()) + ")"
           if summary.get("ignored") else ""),
        "normalised: " + (", ".join(f"{k} {v}" for k, v in summary["normalised"].items()) or "none"),
        "set aside: " + (", ".join(f"{k} {v}" for k, v in summary["rejects"].items()) or "none")
        + f" (one line per file in {summary['rejects_file']})",
    ]
    decided, groups = summary["split"]["decided_by"], summary["split"]["groups"]
    by = ", ".join(f"{k} {v}" for k, v in decided.items() if v) or "nothing (no training files)"
    lines.insert(3, f"train/eval split by {by} (training name stems) -> "
                 + ", ".join(f"{k} {v}" for k, v in groups.items()) + " groups")
    for i, (source, splits) in enumerate(summary["by_source"].items()):
        lines.insert(4 + i, f"source {source}: " + "; ".join(
            f"{s} {c['photos']} photos / {c['scenes']} scenes / {c['examples']} examples" for s, c in splits.items()))
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
