"""What a killed training run needs beyond Keras' backup to resume as if it had never stopped.

keras.callbacks.BackupAndRestore checkpoints the model and its optimizers at every epoch end and
restarts fit at the next epoch, but two things live outside that checkpoint:

- the input position: fit builds a fresh iterator, so a resumed run would read the dataset from
  its start again (the examples of the epochs before the kill twice, the ones after never).
  `completed_epochs` reads how far the backup got, and trainer/fitting.py skips that many
  epochs' batches of the (seeded, deterministic) training dataset before fit starts;
- keep_best's memory: which epoch validated best, its weights, and the history of the epochs
  before the kill. `RunHistory` writes them to disk at every epoch end, before the backup of
  that epoch, and reads them back when a run resumes, so the exported weights are those of the
  best validation epoch of the whole run and history.json holds every epoch.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from typing import Any

import tensorflow as tf
import tf_keras as keras

# tf_keras/src/distribute/worker_training_state.py: the epoch BackupAndRestore saved last, 0-based.
_SAVED_EPOCH_KEY = "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"
_STATE_FILE = "run_state.json"
_BEST_WEIGHTS = "best_weights"


def completed_epochs(backup_dir: str) -> int:
    """Epochs a BackupAndRestore backup under `backup_dir` has completed (0: none, or no backup).

    Reads the checkpoint BackupAndRestore writes (`<backup_dir>/chief/ckpt-N`, or one folder per
    worker); the saved epoch is 0-based, so a backup written at the end of epoch 2 gives 3.
    """
    for folder in sorted(tf.io.gfile.glob(os.path.join(backup_dir, "*"))):
        latest = tf.train.latest_checkpoint(folder)
        if not latest:
            continue
        reader = tf.train.load_checkpoint(latest)
        if reader.has_tensor(_SAVED_EPOCH_KEY):
            return max(0, int(reader.get_tensor(_SAVED_EPOCH_KEY)) + 1)
    return 0


class RunHistory(keras.callbacks.Callback):
    """The run's whole history and its best validation epoch, kept on disk across a kill.

    state_dir: a folder of its own (not inside BackupAndRestore's, which deletes its folder at
    the end). monitor: the validation log to maximise (e.g. "val_psnr"), or None to keep the
    history only. At each epoch end it appends the epoch's logs and, when `monitor` improved,
    saves the model's weights (all of them: generator, its EMA, discriminators) as that epoch's.
    At the end of training it restores the best epoch's weights when that was not the last one.
    After `finish()` (a run that completed) the folder is deleted. Attributes: `history`
    (name -> one float per epoch since the run's first epoch), `best_epoch` (0-based or None).
    """

    def __init__(self, state_dir: str, monitor: str | None = None):
        super().__init__()
        self.state_dir, self.monitor = state_dir, monitor
        self.history: dict[str, list[float]] = {}
        self.best_epoch: int | None = None
        self.best: float = -math.inf
        self._last_epoch: int | None = None

    def on_train_begin(self, logs=None):
        state = self._read()
        self.history = {k: list(v) for k, v in state.get("history", {}).items()}
        self.best_epoch = state.get("best_epoch")
        self.best = float(state.get("best", -math.inf))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        n = max((len(v) for v in self.history.values()), default=0)
        if epoch < n:  # a run killed after this callback wrote the epoch but before its backup
            self.history = {k: v[:epoch] for k, v in self.history.items()}
        for name, value in logs.items():
            self.history.setdefault(name, [math.nan] * epoch).append(float(value))
        self._last_epoch = epoch
        value = logs.get(self.monitor) if self.monitor else None
        if value is not None and math.isfinite(float(value)) and float(value) > self.best:
            self.best, self.best_epoch = float(value), epoch
            self.model.save_weights(os.path.join(self.state_dir, _BEST_WEIGHTS, "weights"))
        self._write()

    def on_train_end(self, logs=None):
        if self.best_epoch is not None and self.best_epoch != self._last_epoch:
            self.model.load_weights(os.path.join(self.state_dir, _BEST_WEIGHTS, "weights"))
            print(f"Restoring the weights of epoch {self.best_epoch + 1}, the best {self.monitor} "
                  f"({self.best:.4g}) of the run", flush=True)

    def finish(self) -> None:
        """The run completed: its state is no longer needed for a resume."""
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _read(self) -> dict[str, Any]:
        path = os.path.join(self.state_dir, _STATE_FILE)
        if not tf.io.gfile.exists(path):
            return {}
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)

    def _write(self) -> None:
        tf.io.gfile.makedirs(self.state_dir)
        path = os.path.join(self.state_dir, _STATE_FILE)
        # Written whole, then renamed: a kill mid-write leaves the previous state, not half a file.
        with tf.io.gfile.GFile(path + ".tmp", "w") as f:
            json.dump({"history": self.history, "best_epoch": self.best_epoch, "best": self.best,
                       "monitor": self.monitor}, f)
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
