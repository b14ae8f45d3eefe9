"""Keras `fit` for long runs: checkpoints to resume from, a NaN guard, TensorBoard scalars and images.

One epoch is `checkpoint_every` steps, so BackupAndRestore's end-of-epoch backup is the "every N
steps" checkpoint: a killed process restarted with the same backup_dir continues from the last
backup with the same step counter and optimizer state (all of the model's optimizers: they are
attributes of the model, which the backup checkpoints). The last epoch stops at train_steps when
that is not a multiple of checkpoint_every. A NaN/Inf loss raises before that step's backup is
written, so the backup left on disk is the last good one. A run that finishes deletes its backup.
"""
from __future__ import annotations

import tempfile
from typing import Any

import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import callbacks, distribute, run_state, summaries


class _StopAtStep(keras.callbacks.Callback):
    """Ends fit once `steps` steps are done in all, so a last epoch shorter than the others (when
    train_steps is not a multiple of checkpoint_every) does not overshoot train_steps."""

    def __init__(self, steps: int, steps_per_epoch: int):
        super().__init__()
        self.steps, self.steps_per_epoch, self._epoch = steps, steps_per_epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch * self.steps_per_epoch + batch + 1 >= self.steps:
            self.model.stop_training = True


def fit(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    eval_ds: tf.data.Dataset | None,
    *,
    train_steps: int,
    eval_steps: int,
    checkpoint_every: int,
    backup_dir: str,
    log_dir: str | None = None,
    image_batch: dict[str, tf.Tensor] | None = None,
    log_images_every: int = 0,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    keep_best: bool = False,
    verbose: int = 2,
) -> Any:
    """Train `model` (built) for `train_steps` steps; returns the Keras History.

    keep_best: GAN training oscillates, so the weights of the epoch with the best validation PSNR
    are restored at the end (that epoch's weights are kept on disk, so after a resume the best of
    the whole run counts). The returned History's `history` holds every epoch of the run, also
    those before a resume, and `best_epoch` the 0-based epoch whose weights the model ends with.
    """
    steps_per_epoch = min(train_steps, checkpoint_every)
    epochs = -(-train_steps // steps_per_epoch)
    done = run_state.completed_epochs(backup_dir)
    if done:  # resume in the data too: the batches the backup already trained on are not seen again
        train_ds = train_ds.skip(done * steps_per_epoch)
    # Workers other than the chief keep theirs in scratch (as Keras does with their backups): they
    # save weights too, and must not write over the chief's files.
    state_dir = (backup_dir.rstrip("/") + "_state" if distribute.is_chief(model.distribute_strategy)
                 else tempfile.mkdtemp(prefix="run_state_"))
    keeper = run_state.RunHistory(state_dir, monitor="val_psnr" if keep_best and eval_ds is not None else None)
    # NaNGuard comes before BackupAndRestore: on a diverged step it raises before the backup; the
    # run state is written before the backup of the same epoch, so a backup never runs ahead of it.
    cbs: list[keras.callbacks.Callback] = [
        callbacks.NaNGuard(),
        keeper,
        keras.callbacks.BackupAndRestore(backup_dir=backup_dir),
    ]
    if train_steps % steps_per_epoch:
        cbs.append(_StopAtStep(train_steps, steps_per_epoch))
    if log_dir:
        cbs.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=max(1, steps_per_epoch // 5)))
        if image_batch is not None and log_images_every:
            cbs.append(summaries.ImageSummary(log_dir, image_batch,
                                              every_n_epochs=max(1, log_images_every // steps_per_epoch)))
    cbs.extend(extra_callbacks or [])
    history = model.fit(
        train_ds, steps_per_epoch=steps_per_epoch, epochs=epochs,
        validation_data=eval_ds, validation_steps=eval_steps if eval_ds is not None else None,
        callbacks=cbs, verbose=verbose)
    history.history = keeper.history
    history.best_epoch = keeper.best_epoch if keeper.best_epoch is not None else max(
        (len(v) for v in keeper.history.values()), default=1) - 1
    keeper.finish()
    return history
