"""Demo quality over seeds: the README's "Demo quality" table, re-measured with the real CLI.

    python bench/demo_quality.py [--runs dped wespe dped-fidelity wespe-no-adversarial]
        [--seeds 0 1 2] [--root runs/bench_quality] [--out runs/bench_quality/results.json]

Each (run, seed) is one `phone2dslr run` in its own process and its own pipeline root (so no
cached component and no earlier blessed baseline colours it), with `train.seed` set; the demo
data itself is the same for all (data.seed 0). What is compared, from each run's final summary:
blessing, test PSNR (mean of per-image PSNR) and pooled PSNR of the model and of the untouched
phone photo, SSIM, and the wall time of the whole command (data check, ingest, training,
evaluation, TFLite export, report). The table gives every run, then per kind the mean and the
min-max over seeds, against issue 10's goals (DPED >= +1.0 dB, SSIM >= +0.01; WESPE >= +0.5 dB,
SSIM >= 0; each blessed, <= 5 min).

Runs are sequential: they are CPU-bound, and two at once would only double both walls. Expect
about 4 minutes a run on 2 cores (3 seeds x 4 kinds: 45-50 minutes); the walls move with machine
load, the gains do not (a seed gives the same examples in the same order on the same machine).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / ".venv" / "bin" / "phone2dslr"

# kind -> (config, extra --set overrides, goal: (min PSNR gain dB, min SSIM gain) or None)
RUNS: dict[str, tuple[str, tuple[str, ...], tuple[float, float] | None]] = {
    "dped": ("configs/demo.yaml", (), (1.0, 0.01)),
    "wespe": ("configs/wespe_unpaired.yaml", (), (0.5, 0.0)),
    # the same generator on pixel-fidelity terms only: what the adversarial term adds or costs
    "dped-fidelity": ("configs/demo.yaml", ("train.loss_weights.texture=0",), None),
    # WESPE has no pixel target: without its discriminators G has nothing to learn
    "wespe-no-adversarial": ("configs/wespe_unpaired.yaml",
                             ("train.loss_weights.color=0", "train.loss_weights.texture=0"), None),
}
MAX_WALL_S = 300.0
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+)"
_SUMMARY = {
    "blessing": re.compile(r"^\s*blessing: (\S+)", re.MULTILINE),
    "psnr": re.compile(rf"^\s*test PSNR: model {_NUMBER} dB, phone input {_NUMBER} dB", re.MULTILINE),
    "pooled": re.compile(rf"^test PSNR pooled: model {_NUMBER} dB, phone input {_NUMBER} dB", re.MULTILINE),
    "ssim": re.compile(rf"^\s*test SSIM: model {_NUMBER}, phone input {_NUMBER}", re.MULTILINE),
}


def parse_summary(text: str) -> dict[str, float | str]:
    """The figures of a run's final summary (pipeline/outputs.py prints them).

    Returns blessing (str) and, in dB or SSIM units, psnr/psnr_input, pooled/pooled_input,
    ssim/ssim_input and the gains psnr_gain, pooled_gain, ssim_gain. Raises ValueError naming the
    first line it could not find (the run failed before its summary, or the format changed).
    """
    out: dict[str, float | str] = {}
    for key, pattern in _SUMMARY.items():
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"no '{key}' line in the run's summary")
        if key == "blessing":
            out[key] = match.group(1)
            continue
        model, phone = float(match.group(1)), float(match.group(2))
        out.update({key: model, f"{key}_input": phone, f"{key}_gain": model - phone})
    return out


def run_one(kind: str, seed: int, root: Path) -> dict:
    """One `phone2dslr run` of `kind` with train.seed = seed under root/<kind>-s<seed>."""
    config, extra, _ = RUNS[kind]
    where = root / f"{kind}-s{seed}"
    shutil.rmtree(where, ignore_errors=True)
    sets = [f"pipeline_root={where / 'pipeline_root'}", f"metadata_path={where / 'metadata.sqlite'}",
            f"serving_dir={where / 'serving'}", f"train.seed={seed}", *extra]
    cmd = [str(CLI), "run", "--config", config, *[a for s in sets for a in ("--set", s)]]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    where.mkdir(parents=True, exist_ok=True)
    (where / "run.log").write_text(proc.stdout + proc.stderr)
    record = {"kind": kind, "seed": seed, "wall_s": round(wall, 1), "returncode": proc.returncode}
    try:
        record.update(parse_summary(proc.stdout))
    except ValueError as e:
        record["error"] = f"{e}; see {where / 'run.log'}"
    return record


def table(records: list[dict]) -> str:
    """Markdown: every run, then the mean (min-max) of each kind, with the goal it is held to."""
    lines = ["| run | seed | blessed | test PSNR | gain | pooled gain | SSIM gain | wall |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['kind']} | {r['seed']} | failed: {r['error']} | | | | | {r['wall_s']:.0f} s |")
            continue
        lines.append(f"| {r['kind']} | {r['seed']} | {r['blessing']} | {r['psnr']:.2f} dB | {r['psnr_gain']:+.2f} dB "
                     f"| {r['pooled_gain']:+.2f} dB | {r['ssim_gain']:+.4f} | {r['wall_s']:.0f} s |")
    lines += ["", "| kind | runs blessed | PSNR gain mean (min-max) | SSIM gain mean (min-max) | max wall | goal met |",
              "|---|---|---|---|---|---|"]
    for kind in dict.fromkeys(r["kind"] for r in records):
        done = [r for r in records if r["kind"] == kind and "error" not in r]
        if not done:
            continue
        blessed = sum(r["blessing"] == "BLESSED" for r in done)
        gains, ssims = [r["psnr_gain"] for r in done], [r["ssim_gain"] for r in done]
        wall = max(r["wall_s"] for r in done)
        goal = RUNS[kind][2]
        met = "(reference)" if goal is None else ("yes" if (
            blessed == len(done) == len([r for r in records if r["kind"] == kind])
            and min(gains) >= goal[0] and min(ssims) >= goal[1] and wall <= MAX_WALL_S) else "no")
        lines.append(f"| {kind} | {blessed}/{len(done)} | {statistics.mean(gains):+.2f} dB ({min(gains):+.2f} to "
                     f"{max(gains):+.2f}) | {statistics.mean(ssims):+.4f} ({min(ssims):+.4f} to {max(ssims):+.4f}) "
                     f"| {wall:.0f} s | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--root", default=str(REPO / "runs" / "bench_quality"))
    parser.add_argument("--out", default="", help="JSON of every run (default <root>/results.json)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    records = []
    for kind in args.runs:
        for seed in args.seeds:
            print(f"{kind} seed {seed} ...", flush=True)
            records.append(run_one(kind, seed, root))
    out = Path(args.out or root / "results.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=1) + "\n")
    print(table(records))
    print(f"\nevery run: {out}")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
