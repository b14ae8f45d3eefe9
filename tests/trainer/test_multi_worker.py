"""Synchronous multi-worker training of the real DPED model: two processes on loopback.

Each worker runs tests/trainer/fit_script.py with TF_CONFIG naming both (worker 0 and 1), builds
the same tiny DPED under MultiWorkerMirroredStrategy and trains with trainer.fitting.fit. Both
build the same synthetic dataset; tf.distribute shards it by element, so each worker trains on
its half of every global batch of 4, and the all-reduced gradients keep the copies identical.
"""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr.config import TrainConfig
from tests.trainer import fit_script
from phone2dslr.trainer import distribute, fitting, models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS, EVERY = 4, 2
DEADLINE_S = 300  # both workers together; a healthy run takes 20-60 s on 2 busy cores


def _free_loopback_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1 (sockets held together so they differ, then released)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _tail(path, n=3000):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()[-n:]


def _run_workers(tmp_path, ports: list[int]) -> None:
    """Start one process per worker; fail (killing the rest) if one fails or the deadline passes."""
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs, logs = [], []
    try:
        for index in range(len(ports)):
            env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2",
                   "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
            cmd = [sys.executable, "-m", "tests.trainer.fit_script", "--strategy", "multi_worker",
                   "--out", str(tmp_path / "out"), "--backup-dir", str(tmp_path / "backup"),
                   "--steps", str(STEPS), "--checkpoint-every", str(EVERY)]
            logs.append(tmp_path / f"worker{index}.log")
            with open(logs[-1], "w") as log:
                procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + DEADLINE_S
        while any(p.poll() is None for p in procs):
            for i, p in enumerate(procs):
                if p.returncode not in (None, 0):
                    pytest.fail(f"worker {i} failed (rc {p.returncode}):\n{_tail(logs[i])}")
            if time.monotonic() > deadline:
                pytest.fail(f"workers still running after {DEADLINE_S} s:\n"
                            + "\n".join(f"--- worker {i}:\n{_tail(l, 1500)}" for i, l in enumerate(logs)))
            time.sleep(0.2)
        for i, p in enumerate(procs):
            assert p.returncode == 0, f"worker {i} failed (rc {p.returncode}):\n{_tail(logs[i])}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait(timeout=30)


def test_two_workers_train_in_sync_to_identical_weights(tmp_path):
    try:
        ports = _free_loopback_ports(2)
    except OSError as e:
        pytest.skip(f"cannot bind loopback ports for a two-worker cluster here: {e}")
    _run_workers(tmp_path, ports)
    out = tmp_path / "out"
    runs = []
    for task in (0, 1):
        with open(out / f"steps-{task}.jsonl", encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        batches = [r for r in records if r["event"] == "batch"]
        assert [r["step"] for r in batches] == list(range(1, STEPS + 1)), task
        assert batches[-1]["g_iterations"] == batches[-1]["d_iterations"] == STEPS
        final = np.load(out / f"final-{task}.npz")
        runs.append([final[k] for k in final.files])
    initial = np.load(out / "initial-0.npz")
    initial = [initial[k] for k in initial.files]
    assert len(runs[0]) == len(runs[1]) == len(initial)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, w) for a, w in zip(runs[0], initial)), "training did not change the weights"
    assert all(np.isfinite(a).all() for a in runs[0])


def test_multi_worker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(distribute.StrategyError, match="TF_CONFIG"):
        distribute.make_strategy("multi_worker")


def test_mirrored_strategy_trains_dped_on_cpu(tmp_path):
    """strategy: mirrored on a machine without GPUs is one CPU replica; fit, backups and the NaN
    guard (which reads the mirrored step counter) work under it."""
    strategy = distribute.make_strategy("mirrored")
    assert isinstance(strategy, tf.distribute.MirroredStrategy) and strategy.num_replicas_in_sync == 1
    assert distribute.is_chief(strategy)
    cfg = TrainConfig(model="dped", content="pixel", filters=4, batch_size=2, augment=False)
    with strategy.scope():
        model = models.create_model(cfg, patch_size=fit_script.PATCH)
        model(tf.zeros([1, fit_script.PATCH, fit_script.PATCH, 3]))
    history = fitting.fit(model, fit_script.synthetic_dataset(2), None, train_steps=2, eval_steps=0,
                          checkpoint_every=1, backup_dir=str(tmp_path / "backup"), verbose=0)
    assert len(history.history["g_loss"]) == 2 and np.isfinite(history.history["g_loss"]).all()
    assert int(keras.backend.get_value(model.g_optimizer.iterations)) == 2
