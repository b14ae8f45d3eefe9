"""What `phone2dslr run` prints: progress and the summary, no known noise; --verbose brings it back.

Runs the real CLI as a subprocess (its own process, so TensorFlow loads the way a user's run loads
it) on a tiny demo run up to the Evaluator: ingest, TFDV, Transform, two training steps and TFMA,
which between them make every kind of noise that phone2dslr/console.py handles. About 40 s of CPU
per run; three runs.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from phone2dslr.cli import main; sys.exit(main())"]
UNTIL = "Evaluator"
COMPONENTS = ("ImageExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer",
              "Evaluator")
# What a successful run must not print (case-insensitive): TensorFlow's C++ records, TFX's absl
# warnings, anything marked as an error, deprecation notices, Abseil's pre-init notice.
NOISE = re.compile(r"\berror\b|E0000|WARNING:absl|deprecat|absl::InitializeLog|^[IWE]\d{4} ",
                   re.IGNORECASE | re.MULTILINE)


def _settings(tmp: pathlib.Path, data_root: str, demo_dir: str) -> list[str]:
    pairs = {
        "pipeline_root": tmp / "root", "metadata_path": tmp / "metadata.sqlite", "serving_dir": tmp / "serving",
        "data.root": data_root, "data.demo_dir": demo_dir, "data.patch_size": 32, "data.patches_per_image": 1,
        "train.train_steps": 2, "train.eval_steps": 1, "train.checkpoint_every": 1, "train.batch_size": 2,
        "train.filters": 4,
    }
    return [a for key, value in pairs.items() for a in ("--set", f"{key}={value}")]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the CLI's own default, as in a user's shell
    return subprocess.run([*CLI, "run", "--config", "configs/demo.yaml", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_output")
    settings = _settings(tmp, str(tmp / "demo" / "dped"), str(tmp / "demo"))
    quiet = _run([*settings, "--until", UNTIL])
    verbose = _run([*settings, "--until", "StatisticsGen", "--verbose"])  # cached: no new work
    return quiet, verbose


@pytest.mark.slow
def test_a_successful_run_prints_progress_and_summary_without_noise(runs):
    quiet, _ = runs
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    output = quiet.stdout + quiet.stderr
    assert NOISE.findall(output) == [], "noise in a successful run:\n" + "\n".join(
        line for line in output.splitlines() if NOISE.search(line))
    for component in COMPONENTS:
        assert re.search(rf"^\[ *\d+s\] {component} done$", quiet.stdout, re.MULTILINE), component
    assert "== phone2dslr run finished ==" in quiet.stdout


@pytest.mark.slow
def test_verbose_brings_the_hidden_lines_back(runs):
    quiet, verbose = runs
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    output = verbose.stdout + verbose.stderr
    assert "WARNING:absl:ArtifactQuery.property_predicate is not supported." in output
    assert "INFO:absl:Component StatisticsGen is running." in output  # TFX's INFO log, not only progress
    # two cached components, verbose, print more than the whole quiet run
    assert len(output.splitlines()) > len((quiet.stdout + quiet.stderr).splitlines())


@pytest.mark.slow
def test_a_failed_run_ends_in_one_line(tmp_path):
    empty = tmp_path / "no_photos"
    empty.mkdir()
    out = _run([*_settings(tmp_path, str(empty), '""'), "--until", "ImageExampleGen"])
    assert out.returncode == 1
    assert out.stderr.splitlines() == [out.stderr.strip()], out.stderr  # exactly one line
    assert out.stderr.startswith("pipeline failed: IngestError: ") and str(empty) in out.stderr
