"""Training curves for the report, from the Trainer's history.json, drawn with matplotlib as SVG.

trainer/entry.py writes `<model_run>/history.json`: Keras `History.history` (name -> one value per
epoch), the 1-based epoch whose weights were exported (keep_best) and the steps per epoch. The
models' loss names change with recipes and models (DPED: content_loss, w_content_loss, g_loss,
d_loss, d_accuracy; WESPE: color_loss, color_weighted, d_color_loss ...), so names are grouped by
pattern, never listed: weighted terms (`w_*`, `*_weighted`, with the total `g_loss`), unweighted
`*_loss` terms, discriminator losses (`d_*_loss`), accuracies (`*accuracy*`), one panel per
validation metric `val_<m>` with the phone input's `val_<m>_input` beside it (the line to beat),
and whatever else was logged. Every logged series lands in exactly one panel.

Plots are drawn on a bare `matplotlib.figure.Figure` (no pyplot, no global backend state) with
text as paths, a fixed hash salt and no date, so the SVG needs no font and is the same bytes for
the same history.
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import matplotlib
import tensorflow as tf
from matplotlib.figure import Figure

from phone2dslr.components.run_report.page import Plot
from phone2dslr.errors import one_line

HISTORY_FILE = "history.json"  # written by trainer/entry.py (history_record)
SVG_RC = {"svg.fonttype": "path", "svg.hashsalt": "phone2dslr", "font.size": 9}
INPUT_SUFFIX = "_input"


class HistoryError(ValueError):
    """history.json is missing or not what trainer/entry.py writes (one-line message)."""


@dataclass
class Panel:
    """One plot: series (logged name -> per-epoch values) drawn against the same x axis."""

    anchor: str
    title: str
    series: dict[str, list[float]] = field(default_factory=dict)
    reference: dict[str, list[float]] = field(default_factory=dict)  # dashed: the phone input's line
    log_y: bool = False
    hline: float | None = None  # e.g. 0.5: a discriminator at chance
    caption: str = ""


def read_history(model_run_dir: str) -> dict[str, Any]:
    """history.json of a Trainer model_run folder as written by trainer/entry.py.

    Returns {"history": {name: [float]}, "best_epoch": int (1-based), "steps_per_epoch": int,
    "recipe": dict (recipes.as_dict; empty in a history written before it was recorded)}.
    Raises HistoryError when it is missing or malformed.
    """
    path = os.path.join(model_run_dir, HISTORY_FILE)
    if not tf.io.gfile.exists(path):
        raise HistoryError(f"no {HISTORY_FILE} in {model_run_dir} (trainer/entry.py writes it; older runs lack it)")
    try:
        with tf.io.gfile.GFile(path) as f:
            record = json.load(f)
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise HistoryError(f"{path} is unreadable: {one_line(e, with_type=False, limit=200)}") from None
    history = record.get("history") if isinstance(record, dict) else None
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        raise HistoryError(f"{path} has no 'history' object of per-epoch lists")
    epochs = max((len(v) for v in history.values()), default=0)
    return {"history": {str(k): [_number(x) for x in v] for k, v in history.items()},
            "best_epoch": int(record.get("best_epoch") or epochs),
            "steps_per_epoch": int(record.get("steps_per_epoch") or 0),
            "recipe": record["recipe"] if isinstance(record.get("recipe"), dict) else {}}


def panels(history: dict[str, list[float]]) -> list[Panel]:
    """The logged names grouped into panels (see the module docstring); each name in exactly one."""
    names = sorted(history)
    left = set(names)

    def take(test: Callable[[str], bool]) -> dict[str, list[float]]:
        chosen = [n for n in names if n in left and test(n)]
        left.difference_update(chosen)
        return {n: history[n] for n in chosen}

    train = lambda n: not n.startswith("val_")  # noqa: E731
    out = []
    weighted = take(lambda n: train(n) and (n.startswith("w_") or n.endswith("_weighted") or n == "g_loss"))
    if weighted:
        out.append(Panel("curve-weighted", "Generator loss: weighted terms and total", weighted,
                         log_y=_positive(weighted), caption="what the generator minimises, term by term"))
    disc = take(lambda n: train(n) and n.startswith("d_") and n.endswith("loss"))
    raw = take(lambda n: train(n) and n.endswith("loss"))
    if raw:
        out.append(Panel("curve-terms", "Loss terms, unweighted", raw, log_y=_positive(raw)))
    if disc:
        out.append(Panel("curve-discriminator", "Discriminator loss", disc))
    accuracy = take(lambda n: train(n) and "accuracy" in n)
    if accuracy:
        out.append(Panel("curve-accuracy", "Discriminator accuracy", accuracy, hline=0.5,
                         caption="0.5: the discriminator cannot tell enhanced from DSLR patches"))
    for name in [n for n in names if n.startswith("val_") and not n.endswith(INPUT_SUFFIX)]:
        if name not in left:
            continue
        metric = name[len("val_"):]
        series = take(lambda n, name=name: n == name)
        reference = take(lambda n, name=name: n == name + INPUT_SUFFIX)
        out.append(Panel(f"curve-val-{metric}", f"Validation {metric}", series, reference,
                         caption="dashed: the phone photo itself (the line to beat)" if reference else ""))
    rest = take(lambda n: True)
    if rest:
        out.append(Panel("curve-other", "Other logged values", rest))
    return out


def plot(panel: Panel, best_epoch: int, steps_per_epoch: int) -> Plot:
    """The panel as an SVG plot; x is the training step (epoch x steps_per_epoch) or, without it, the epoch.

    Each series is one matplotlib line whose SVG group id (gid) is its logged name, so a reader
    (or a test) can find it; non-finite values are left as gaps; the exported epoch is a dotted line.
    """
    fig = Figure(figsize=(5.4, 3.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    per = steps_per_epoch if steps_per_epoch > 0 else 1
    for styles, series in (({}, panel.series), ({"linestyle": "--"}, panel.reference)):
        for name, values in series.items():
            xs = [(i + 1) * per for i in range(len(values))]
            ys = [v if math.isfinite(v) else math.nan for v in values]
            label = f"{name} (phone input)" if styles else name
            (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=label, **styles)
            line.set_gid(name)
    if panel.hline is not None:
        ax.axhline(panel.hline, color="grey", linewidth=0.8, linestyle=":")
    ax.axvline(best_epoch * per, color="black", linewidth=0.8, linestyle=":", label=f"exported (epoch {best_epoch})")
    if panel.log_y:
        ax.set_yscale("log")
    ax.set_xlabel("training step" if steps_per_epoch > 0 else "epoch")
    ax.set_title(panel.title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return Plot(panel.anchor, panel.title, svg_bytes(fig), panel.caption)


def svg_bytes(fig: Figure) -> bytes:
    """The figure as a self-contained SVG (text as paths, no date, fixed ids)."""
    out = io.BytesIO()
    with matplotlib.rc_context(SVG_RC):
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def for_report(model_run_dir: str | None) -> tuple[list[Plot], str]:
    """The plots for the page and a note (what they show, or why there are none); never raises."""
    if not model_run_dir:
        return [], "no training curves: the Trainer's model_run output was not given to the report"
    try:
        record = read_history(model_run_dir)
    except HistoryError as e:
        return [], f"no training curves: {e}"
    history = record["history"]
    epochs = max((len(v) for v in history.values()), default=0)
    if not epochs:
        return [], f"no training curves: {HISTORY_FILE} in {model_run_dir} holds no epoch"
    per = record["steps_per_epoch"]
    plots = [plot(p, record["best_epoch"], per) for p in panels(history)]
    note = (f"{epochs} epoch(s)" + (f" of {per} steps" if per else "") + ", one value per epoch as Keras logged "
            "it (training losses: the epoch's mean; validation: on the eval split); dotted: epoch "
            f"{record['best_epoch']}, whose weights were exported; from {os.path.join(model_run_dir, HISTORY_FILE)}")
    return plots, note + recipe_note(record.get("recipe") or {})


def recipe_note(recipe: dict[str, Any]) -> str:
    """What the run trained, in words, from history.json's `recipe` (trainer/recipes.as_dict): name,
    source, the EMA when there is one, how it differs from its source and what the config overrode.
    Empty for a history without one (written before the recipe was recorded)."""
    if not recipe.get("name"):
        return ""
    text = f". Recipe {recipe.get('model', '?')}/{recipe['name']}, following {recipe.get('source', '?')}"
    if float(recipe.get("ema_decay") or 0.0) > 0:
        text += (f"; the exported generator is the exponential moving average of its weights (decay "
                 f"{float(recipe['ema_decay']):g}), and so is what validation scored")
    if recipe.get("deviations"):
        text += f"; differs from its source: {recipe['deviations']}"
    if recipe.get("overrides"):
        text += "; overridden by the config: " + ", ".join(f"{k}={v}" for k, v in recipe["overrides"].items())
    return text + "."


def _positive(series: dict[str, list[float]]) -> bool:
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 100


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
