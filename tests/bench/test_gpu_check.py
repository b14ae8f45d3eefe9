"""bench/gpu_check.py: the GPU check runs end to end in its CPU dry mode; peak lookup; no-GPU refusal."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "bench", "gpu_check.py")
sys.path.insert(0, os.path.join(REPO, "bench"))


def test_dry_run_times_both_models_in_both_precisions_and_searches_the_batch(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, SCRIPT, "--dry-run", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["device"] == "CPU (dry run)" and result["peak_tflops"] is None
    seen = {(r["model"], r["variant"]) for r in result["rows"]}
    assert seen == {(m, v) for m in ("dped", "wespe") for v in ("float32", "mixed_bfloat16")}
    for row in result["rows"]:
        assert row["patches_per_s"] > 0 and row["step_gflop"] > 0 and row["tflops"] > 0
        assert row["batch"] == 2 and row["pct_of_peak"] is None  # no peak known for a CPU
    assert {s["model"] for s in result["batch_search"]} == {"dped", "wespe"}
    assert all(s["largest_batch"] == 4 and s["stopped_by"] == "max-batch" for s in result["batch_search"])
    assert "mixed_bfloat16 / float32" in done.stdout and "input pipeline alone" in done.stdout


def test_peaks_and_variants():
    import gpu_check
    import train_bench

    assert gpu_check.device_peak("NVIDIA H200") == (989.4, 494.7)
    assert gpu_check.device_peak("NVIDIA H100 PCIe") == (756.0, 378.0)
    assert gpu_check.device_peak("NVIDIA H100 80GB HBM3") == (989.4, 494.7)
    assert gpu_check.device_peak("Some New GPU") is None
    assert train_bench.parse_variant("mixed_bfloat16+xla") == ("mixed_bfloat16", True)
    assert train_bench.parse_variant("float32") == ("float32", False)
    with pytest.raises(Exception, match="optionally followed by"):
        train_bench.parse_variant("float32+fast")


def test_without_a_gpu_the_real_run_refuses_in_one_line():
    done = subprocess.run([sys.executable, SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 2
    assert "gpu_check: no GPU visible to TensorFlow; --dry-run" in done.stderr
    assert "Traceback" not in done.stderr
