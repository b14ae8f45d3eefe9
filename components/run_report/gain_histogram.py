"""Per-patch PSNR gain over the test split: how many patches the model made worse, and by how much.

The Evaluator's numbers are means; a mean gain of +1 dB can hide a tenth of the patches losing
2 dB (dark scenes, skies, text). Here every patch of the split the Evaluator scored (or, above a
limit, a seeded sample spread over the whole split: split_images.sample_positions) goes through
the SavedModel's `enhance_image` signature (crops.Enhancer, as the report's samples do), and its
gain is

    gain = PSNR(enhanced, DSLR) - PSNR(phone, DSLR)    [dB]

with PSNR = 10 log10(1 / MSE) on [0, 1] images (trainer/metrics.psnr, the metric the Evaluator and
the TFLite checks use). A negative gain means the enhanced patch is further from the DSLR target
than the phone patch it came from. Patches are read one by one (memory stays one patch), so the
whole split can be scored. Patches without a pixel-aligned DSLR target, undecodable ones and
those with an infinite PSNR (identical to the target) are counted, not scored.
"""
from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from phone2dslr.components.run_report.curves import svg_bytes
from phone2dslr.components.run_report.page import GainSummary, Plot
from phone2dslr.components.split_images import sample_positions
from phone2dslr.features import DSLR, PHONE, SOURCE
from phone2dslr.trainer.metrics import psnr
from phone2dslr.trainer.preprocessing import decode_image

WORSE_BY = (0.5, 1.0, 2.0)  # dB: "worse by more than" counts on the page
MAX_BINS = 80
WORST_SHOWN = 5


def patch_gains(enhance: Callable[[np.ndarray], np.ndarray], split_dir: str, limit: int,
                seed: int = 0) -> tuple[dict[str, np.ndarray], int, dict[str, int]]:
    """Phone and enhanced PSNR against the DSLR target for up to `limit` patches of a split folder.

    enhance: float32 [H, W, 3] in [0, 1] -> [H, W, 3] (crops.Enhancer). Reads the GZIP TFRecords
    (`*.gz`) of `split_dir` in file-name order; the patches with a phone and a DSLR image are
    numbered in that order and `limit` of them are drawn with sample_positions(n, limit, seed)
    (all when n <= limit). Returns ({"position": int64 [N], "source": str [N], "psnr_phone",
    "psnr_model", "gain": float64 [N] in dB}, how many patches had both images, skipped counts by
    reason). Patch positions are those of the split, as in split_images.Sample.index.
    """
    files = sorted(tf.io.gfile.glob(os.path.join(split_dir, "*.gz")))
    empty = {"position": np.zeros([0], np.int64), "source": np.zeros([0], str),
             **{k: np.zeros([0]) for k in ("psnr_phone", "psnr_model", "gain")}}
    if not files or limit <= 0:
        return empty, 0, {}
    spec = {key: tf.io.FixedLenFeature([], tf.string, default_value=b"") for key in (PHONE, DSLR, SOURCE)}
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")

    def has_pair(record: tf.Tensor) -> tf.Tensor:
        f = tf.io.parse_single_example(record, spec)
        return tf.logical_and(tf.strings.length(f[PHONE]) > 0, tf.strings.length(f[DSLR]) > 0)

    flags = np.concatenate([b.numpy() for b in records.map(has_pair).batch(4096)] or [np.zeros([0], bool)])
    paired = np.flatnonzero(flags)
    wanted = np.zeros(len(flags), bool)
    wanted[paired[sample_positions(len(paired), limit, seed)]] = True
    mask = tf.constant(wanted)
    rows: dict[str, list] = {k: [] for k in empty}
    skipped = {"undecodable": 0, "dslr_size_mismatch": 0, "identical_to_dslr": 0}
    chosen = records.enumerate().filter(lambda i, _: tf.gather(mask, i))
    for index, record in chosen:
        f = tf.io.parse_single_example(record, spec)
        try:
            phone, dslr = decode_image(f[PHONE]), decode_image(f[DSLR])
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
            skipped["undecodable"] += 1
            continue
        if phone.shape != dslr.shape:
            skipped["dslr_size_mismatch"] += 1
            continue
        enhanced = tf.constant(enhance(phone.numpy()), tf.float32)
        p_phone, p_model = (float(x) for x in psnr(tf.stack([phone, enhanced]), tf.stack([dslr, dslr])).numpy())
        if not (math.isfinite(p_phone) and math.isfinite(p_model)):
            skipped["identical_to_dslr"] += 1
            continue
        for key, value in (("position", int(index)), ("source", f[SOURCE].numpy().decode("utf-8", "replace")),
                           ("psnr_phone", p_phone), ("psnr_model", p_model), ("gain", p_model - p_phone)):
            rows[key].append(value)
    out = {k: np.asarray(v) if v else empty[k] for k, v in rows.items()}
    return out, len(paired), {k: v for k, v in skipped.items() if v}


def bin_edges(gains: np.ndarray, max_bins: int = MAX_BINS) -> np.ndarray:
    """Histogram edges of equal width with 0 dB on an edge (so no bin mixes worse and better patches).

    The width is numpy's "auto" choice (max of Sturges and Freedman-Diaconis), widened when that
    would give more than `max_bins` bins; at least 0.01 dB.
    """
    width = float(np.diff(np.histogram_bin_edges(gains, bins="auto")[:2])[0]) if gains.size > 1 else 0.1
    lo, hi = min(float(gains.min()), 0.0), max(float(gains.max()), 0.0)
    width = max(width, (hi - lo) / max_bins, 0.01)
    first, last = math.floor(lo / width), math.ceil(hi / width)
    if last == first:  # every gain is 0 dB: one bin from 0 to width
        last += 1
    return np.arange(first, last + 1) * width


def histogram(gains: np.ndarray, title: str) -> Plot:
    """The gains (dB) as a histogram; bins below 0 dB red (worse than the phone patch), others green."""
    edges = bin_edges(gains)
    counts, _ = np.histogram(gains, bins=edges)
    fig = Figure(figsize=(7.0, 3.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colours = ["#c92a2a" if right <= 0 else "#2b8a3e" for right in edges[1:]]
    bars = ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=colours, edgecolor="white",
                  linewidth=0.4)
    for patch in bars.patches:
        patch.set_gid("gain-bar")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.axvline(float(np.median(gains)), color="#1c7ed6", linestyle="--", linewidth=1.0,
               label=f"median {np.median(gains):+.2f} dB")
    ax.set_xlabel("PSNR gain per patch, enhanced vs phone, against the DSLR patch [dB]")
    ax.set_ylabel("patches")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.legend(fontsize=8)
    return Plot("gain-histogram", title, svg_bytes(fig))


def summarize(scores: dict[str, np.ndarray], split: str, split_pairs: int, limit: int,
              skipped: dict[str, int]) -> GainSummary:
    """The page's numbers and plot for the gains of `patch_gains(..., limit)`; needs at least one patch."""
    gains = scores["gain"]
    order = np.argsort(gains, kind="stable")[:WORST_SHOWN]
    sampled = split_pairs > limit
    title = f"PSNR gain of {len(gains)} test patches" + (" (seeded sample)" if sampled else "")
    return GainSummary(
        split=split, patches=int(len(gains)), split_pairs=int(split_pairs), sampled=sampled,
        worse=int(np.sum(gains < 0)), worse_by={f"{t:g}": int(np.sum(gains < -t)) for t in WORSE_BY},
        mean=float(np.mean(gains)), median=float(np.median(gains)),
        p5=float(np.percentile(gains, 5)), p95=float(np.percentile(gains, 95)),
        worst=[(int(scores["position"][i]), str(scores["source"][i]), float(scores["psnr_phone"][i]),
                float(gains[i])) for i in order],
        histogram=histogram(gains, title), skipped=skipped)


def for_report(enhance: Callable[[np.ndarray], np.ndarray] | None, split_dir: str | None, split: str,
               limit: int) -> tuple[GainSummary | None, str]:
    """The histogram's data for the page and a note (what was scored, or why nothing was); never raises
    for data it cannot use."""
    if limit <= 0:
        return None, "gain histogram turned off (gain_patches = 0)"
    if enhance is None or split_dir is None:
        return None, f"no gain histogram: no model or no split {split!r} to score"
    scores, pairs, skipped = patch_gains(enhance, split_dir, limit)
    if not len(scores["gain"]):
        return None, f"no gain histogram: split {split!r} has no patch with a pixel-aligned DSLR target to score"
    summary = summarize(scores, split, pairs, limit, skipped)
    which = (f"a seeded sample of {min(limit, pairs)} of its {pairs} patches with a DSLR target, spread over the "
             "whole split" if summary.sampled else f"all {pairs} of its patches with a DSLR target")
    note = (f"split {split!r}: {which}, each enhanced by the SavedModel's enhance_image signature; "
            "gain = PSNR(enhanced, DSLR) - PSNR(phone, DSLR)")
    if skipped:
        note += "; not scored: " + ", ".join(f"{k} {v}" for k, v in skipped.items())
    return summary, note
