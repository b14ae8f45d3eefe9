"""MirroredStrategy over two replicas (two logical CPU devices, as two GPUs would be) trains the
same model as one device given the whole global batch: the code path multi-GPU training runs."""
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _fit(out, *args: str) -> None:
    # A process each: logical devices must be configured before TensorFlow starts.
    cmd = [sys.executable, "-m", "tests.trainer.fit_script", "--out", str(out / "out"),
           "--backup-dir", str(out / "backup"), "--recipe", "demo", "--pairs", "4", "--steps", "2",
           "--checkpoint-every", "2", *args]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_replicas_equal_one_device_on_the_global_batch(tmp_path):
    mirrored, single = tmp_path / "mirrored", tmp_path / "single"
    _fit(mirrored, "--strategy", "mirrored", "--logical-cpus", "2", "--per-replica-batch", "2")
    _fit(single, "--strategy", "default", "--per-replica-batch", "4")
    info = json.loads((mirrored / "out" / "strategy-0.json").read_text())
    assert info["replicas"] == 2 and len(info["devices"]) == 2 and info["devices"][0] != info["devices"][1]
    before = np.load(single / "out" / "initial-0.npz")
    a, b = np.load(mirrored / "out" / "final-0.npz"), np.load(single / "out" / "final-0.npz")
    moved = max(np.abs(b[k] - before[k]).max() for k in b.files)
    assert moved > 1e-4  # two Adam steps of lr 5e-4 moved the weights
    # Per-replica losses scaled by 1/replicas, gradients summed, batch norm synchronized (the
    # paper discriminator's): the same update as the global batch on one device, to rounding
    # (seen: 1.5e-8; per-replica batch norm statistics instead move weights by 1.5e-6).
    for key in a.files:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-7, err_msg=key)
