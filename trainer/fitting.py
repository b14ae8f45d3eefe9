"""Keras `fit` for long runs: checkpoints to resume from, a NaN guard, TensorBoard scalars and images.

One epoch is `checkpoint_every` steps, so BackupAndRestore's end-of-epoch backup is the "every N
steps" checkpoint: a killed process restarted with the same backup_dir continues from the last
backup with the same step counter and optimizer state. A NaN/Inf loss raises before that step's
backup is written, so the backup left on disk is the last good one.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from trainer import callbacks, summaries


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
    verbose: int = 2,
) -> Any:
    """Train `model` (built) for `train_steps` steps; returns the Keras History."""
    steps_per_epoch = min(train_steps, checkpoint_every)
    epochs = -(-train_steps // steps_per_epoch)
    # NaNGuard comes before BackupAndRestore: on a diverged step it raises before the backup.
    cbs: list[keras.callbacks.Callback] = [
        callbacks.NaNGuard(),
        keras.callbacks.BackupAndRestore(backup_dir=backup_dir),
    ]
    if log_dir:
        cbs.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=max(1, steps_per_epoch // 5)))
        if image_batch is not None and log_images_every:
            cbs.append(summaries.ImageSummary(log_dir, image_batch,
                                              every_n_epochs=max(1, log_images_every // steps_per_epoch)))
    cbs.extend(extra_callbacks or [])
    return model.fit(
        train_ds, steps_per_epoch=steps_per_epoch, epochs=epochs,
        validation_data=eval_ds, validation_steps=eval_steps if eval_ds is not None else None,
        callbacks=cbs, verbose=verbose)
