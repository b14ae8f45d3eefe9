"""Resuming completely: the data position and keep_best's memory survive a kill (trainer/run_state.py)."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr.config import TrainConfig
from phone2dslr.trainer import fitting, models, run_state
from tests.trainer import fit_script
from tests.trainer.test_resume import DEADLINE_S, EVERY, REPO, STEPS, _read, _script, _tail


def _tiny_model():
    keras.utils.set_random_seed(0)
    cfg = TrainConfig(model="dped", content="pixel", filters=4, batch_size=2, augment=False, recipe="demo",
                      global_skip=True)
    model = models.create_model(cfg, patch_size=fit_script.PATCH)
    model(tf.zeros([1, fit_script.PATCH, fit_script.PATCH, 3]))
    return model


def _epoch(keeper, model, epoch, val_psnr, seed):
    """One 'epoch': new weights (seeded), then the callback's epoch end with the given validation."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()])
    keeper.on_epoch_end(epoch, {"g_loss": float(seed), "val_psnr": val_psnr})
    return [w.copy() for w in model.get_weights()]


def test_best_epoch_and_history_survive_a_kill(tmp_path):
    """Epochs 0-1 in one process (best: epoch 1), killed; epochs 2-3 after the resume are worse:
    the run ends with epoch 1's weights and a history of all four epochs."""
    model = _tiny_model()
    first = run_state.RunHistory(str(tmp_path / "state"), monitor="val_psnr")
    first.set_model(model)
    first.on_train_begin()
    _epoch(first, model, 0, 20.0, seed=0)
    best = _epoch(first, model, 1, 25.0, seed=1)
    del first  # the kill: nothing in memory survives

    resumed = run_state.RunHistory(str(tmp_path / "state"), monitor="val_psnr")
    resumed.set_model(model)
    resumed.on_train_begin()
    assert resumed.best_epoch == 1 and resumed.best == 25.0
    _epoch(resumed, model, 2, 22.0, seed=2)
    last = _epoch(resumed, model, 3, 23.0, seed=3)
    resumed.on_train_end()
    assert resumed.history == {"g_loss": [0.0, 1.0, 2.0, 3.0], "val_psnr": [20.0, 25.0, 22.0, 23.0]}
    for got, want, later in zip(model.get_weights(), best, last):
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got, later) or got.size == 0
    ema = {id(w) for w in model.generator_ema.weights}
    assert any(id(w) in ema for w in model.weights)  # the averaged generator is among what is restored
    resumed.finish()
    assert not (tmp_path / "state").exists()


def test_an_epoch_written_before_the_kill_but_not_backed_up_is_replaced(tmp_path):
    model = _tiny_model()
    keeper = run_state.RunHistory(str(tmp_path / "state"), monitor=None)
    keeper.set_model(model)
    keeper.on_train_begin()
    for epoch in range(3):
        keeper.on_epoch_end(epoch, {"g_loss": float(epoch)})
    # The backup holds 2 epochs: the resumed run repeats epoch 2 and must not log it twice.
    again = run_state.RunHistory(str(tmp_path / "state"), monitor=None)
    again.set_model(model)
    again.on_train_begin()
    again.on_epoch_end(2, {"g_loss": 7.0})
    assert again.history == {"g_loss": [0.0, 1.0, 7.0]} and again.best_epoch is None
    assert json.loads((tmp_path / "state" / "run_state.json").read_text())["history"] == again.history


def test_completed_epochs_reads_the_keras_backup(tmp_path):
    model = _tiny_model()
    data = fit_script.synthetic_dataset(2)
    assert run_state.completed_epochs(str(tmp_path / "none")) == 0

    class Stop(keras.callbacks.Callback):  # an interruption after the backup of epoch 2 (0-based 1)
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fitting.fit(model, data, None, train_steps=8, eval_steps=0, checkpoint_every=2,
                    backup_dir=str(tmp_path / "backup"), extra_callbacks=[Stop()], verbose=0)
    assert run_state.completed_epochs(str(tmp_path / "backup")) == 2
    history = fitting.fit(model, data, None, train_steps=8, eval_steps=0, checkpoint_every=2,
                          backup_dir=str(tmp_path / "backup"), verbose=0)
    assert len(history.history["g_loss"]) == 4 and history.best_epoch == 3  # the epochs before the stop count
    assert run_state.completed_epochs(str(tmp_path / "backup")) == 0  # a finished run leaves no backup
    assert not (tmp_path / "backup_state").exists()


def _run_to_end(cmd, env, log):
    with open(log, "w") as f:
        try:
            subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=DEADLINE_S, check=True)
        except subprocess.CalledProcessError:
            pytest.fail(f"run failed:\n{_tail(log)}")


@pytest.mark.slow
def test_a_killed_run_consumes_the_same_batches_as_an_uninterrupted_one(tmp_path):
    """8 distinct pairs in batches of 2: four different batches in turn. A resumed run that read
    the data from its start again would train on other batches and end with other weights."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    cmd, env = _script(whole)
    _run_to_end([*cmd[:-2], "--pairs", "8"], env, tmp_path / "whole.log")

    cmd, env = _script(cut, "--sleep", "1.0")
    cmd = [a if a != "2" or cmd[i - 1] != "--pairs" else "8" for i, a in enumerate(cmd)]
    steps_file = cut / "out" / "steps-0.jsonl"
    with open(tmp_path / "cut1.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not any(r.get("step") == EVERY + 1 for r in _read(steps_file)):
            assert proc.poll() is None, _tail(tmp_path / "cut1.log")
            assert time.monotonic() < deadline, _tail(tmp_path / "cut1.log")
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert run_state.completed_epochs(str(cut / "backup")) >= 1
    _run_to_end([a for a in cmd if a not in ("--sleep", "1.0")], env, tmp_path / "cut2.log")
    begin = [r for r in _read(steps_file) if r["event"] == "begin"]
    assert len(begin) == 2 and 0 < begin[1]["g_iterations"] < STEPS  # it really resumed mid-run
    a, b = np.load(whole / "out" / "final-0.npz"), np.load(cut / "out" / "final-0.npz")
    for key in a.files:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-6, err_msg=key)
