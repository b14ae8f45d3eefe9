"""Long-run safety of trainer.fitting.fit on the real DPED model: resume after SIGKILL, NaN guard.

The kill-and-resume test runs tests/trainer/fit_script.py twice as a subprocess with the same
backup_dir; the NaN test trains in this process.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr.config import TrainConfig
from tests.trainer import fit_script
from phone2dslr.trainer import fitting, models
from phone2dslr.trainer.callbacks import TrainingDivergedError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS, EVERY = 6, 2
DEADLINE_S = 240  # per process; a healthy run takes 15-40 s on 2 busy cores


def _read(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _script(tmp_path, *extra):
    cmd = [sys.executable, "-m", "tests.trainer.fit_script", "--out", str(tmp_path / "out"),
           "--backup-dir", str(tmp_path / "backup"), "--steps", str(STEPS), "--checkpoint-every", str(EVERY),
           "--pairs", "2", *extra]
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    return cmd, env


def _tail(path, n=3000):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()[-n:]


def test_killed_run_resumes_from_its_last_backup_with_the_same_optimizer_state(tmp_path):
    steps_file = tmp_path / "out" / "steps-0.jsonl"
    log1 = tmp_path / "run1.log"
    # Run 1: slow (1 s after each batch); SIGKILL once the first backup (step 2) exists and step 3
    # has been recorded, i.e. between two backups.
    cmd, env = _script(tmp_path, "--sleep", "1.0")
    with open(log1, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not any(r.get("step") == EVERY + 1 for r in _read(steps_file)):
            assert proc.poll() is None, f"run 1 ended (rc {proc.returncode}) before the kill:\n{_tail(log1)}"
            assert time.monotonic() < deadline, f"run 1 made no progress in {DEADLINE_S} s:\n{_tail(log1)}"
            time.sleep(0.1)
        assert tf.io.gfile.glob(str(tmp_path / "backup" / "*" / "checkpoint")), "no backup before the kill"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    run1 = [r for r in _read(steps_file) if r["event"] == "batch"]
    assert run1 and run1[-1]["step"] < STEPS, "run 1 was meant to die before finishing"

    # Run 2: the same command resumes from the backup and finishes.
    log2 = tmp_path / "run2.log"
    with open(log2, "w") as log:
        try:
            subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=DEADLINE_S,
                           check=True)
        except subprocess.CalledProcessError:
            pytest.fail(f"run 2 failed:\n{_tail(log2)}")
    records = _read(steps_file)
    pids = list(dict.fromkeys(r["pid"] for r in records))
    assert len(pids) == 2
    begin2, *run2 = [r for r in records if r["pid"] == pids[1]]
    assert begin2["event"] == "begin"
    saved = begin2["g_iterations"]
    # It started from the saved step, a backup boundary the first run reached, not from 0.
    assert saved > 0 and saved % EVERY == 0 and saved <= run1[-1]["step"], (saved, run1[-1])
    assert begin2["d_iterations"] == saved  # the discriminator's optimizer was restored too
    assert [r["step"] for r in run2] == list(range(saved + 1, STEPS + 1))
    assert [r["g_iterations"] for r in run2] == [r["d_iterations"] for r in run2] == list(range(saved + 1, STEPS + 1))
    # Restored at the start: the weights and the generator's Adam moments as run 1 left them at
    # the backup (the discriminator's optimizer builds its moments at its first step, restored then).
    at_backup = next(r for r in run1 if r["step"] == saved)
    for key in ("weights", "g_state"):
        assert begin2[key] == pytest.approx(at_backup[key], rel=1e-5), key
    # Every step sees the same batch (--pairs 2), so the first resumed step must reproduce what run 1
    # computed at that step: same weights and the same Adam moments in both optimizers. Fresh
    # moments would differ by far more than float noise (|m| changes ~15% per step here).
    redone = next(r for r in run1 if r["step"] == saved + 1)
    for key in ("weights", "g_state", "d_state"):
        assert run2[0][key] == pytest.approx(redone[key], rel=1e-5), key
    assert not tf.io.gfile.glob(str(tmp_path / "backup" / "*" / "checkpoint")), "backup left after a finished run"
    final = np.load(tmp_path / "out" / "final-0.npz")
    assert all(np.isfinite(final[k]).all() for k in final.files)


class _WeightsAt(keras.callbacks.Callback):
    """Keeps the generator's weights after every step and at the start of training."""

    def __init__(self):
        super().__init__()
        self.after_step, self.at_begin = {}, None

    def on_train_begin(self, logs=None):
        self.at_begin = self.model.generator.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        self.after_step[int(self.model.g_optimizer.iterations)] = self.model.generator.get_weights()


def _tiny_dped():
    keras.utils.set_random_seed(0)
    cfg = TrainConfig(model="dped", content="pixel", filters=4, batch_size=2, augment=False)
    model = models.create_model(cfg, patch_size=fit_script.PATCH)
    model(tf.zeros([1, fit_script.PATCH, fit_script.PATCH, 3]))
    return model


def test_nan_loss_stops_training_and_keeps_the_last_good_backup(tmp_path):
    backup = str(tmp_path / "backup")
    pairs = fit_script.synthetic_pairs(2)
    clean = tf.data.Dataset.from_tensor_slices(pairs).batch(2).repeat()
    poisoned = tf.data.Dataset.from_tensor_slices({k: np.full_like(v, np.nan) for k, v in pairs.items()})
    nan_step = 6  # the last step of the third "epoch": its backup must not be written
    data = clean.take(nan_step - 1).concatenate(poisoned.batch(2).repeat())
    model, seen = _tiny_dped(), _WeightsAt()
    with pytest.raises(TrainingDivergedError, match=rf"g_loss = nan at step {nan_step}\b"):
        fitting.fit(model, data, None, train_steps=10, eval_steps=0, checkpoint_every=EVERY,
                    backup_dir=backup, extra_callbacks=[seen], verbose=0)
    assert int(model.g_optimizer.iterations) == nan_step
    assert not np.isfinite(model.generator.get_weights()[0]).all()  # this step's update was NaN

    # The backup on disk is the one from step 4, before the NaN: resuming restores finite weights
    # equal to those after step 4, and training goes on from there on clean data, to exactly
    # train_steps although 9 is not a multiple of checkpoint_every.
    resumed, again = _tiny_dped(), _WeightsAt()
    fitting.fit(resumed, clean, None, train_steps=9, eval_steps=0, checkpoint_every=EVERY,
                backup_dir=backup, extra_callbacks=[again], verbose=0)
    last_good = (nan_step - 1) // EVERY * EVERY  # 4
    for restored, expected in zip(again.at_begin, seen.after_step[last_good]):
        np.testing.assert_array_equal(restored, expected)
    assert sorted(again.after_step) == list(range(last_good + 1, 10))
    assert int(resumed.g_optimizer.iterations) == int(resumed.d_optimizer.iterations) == 9
    assert all(np.isfinite(w).all() for w in resumed.generator.get_weights())

