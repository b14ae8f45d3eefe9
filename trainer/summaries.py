"""TensorBoard image summaries: phone | enhanced | DSLR side by side on a fixed batch.

A fixed batch makes successive images comparable, which is what a person scanning TensorBoard
for colour casts or texture artefacts needs.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer.preprocessing import DSLR, PHONE


class ImageSummary(keras.callbacks.Callback):
    """Writes up to `max_images` rows of phone | enhanced | DSLR every `every_n_epochs` epochs."""

    def __init__(self, log_dir: str, batch: dict[str, tf.Tensor], every_n_epochs: int = 1,
                 max_images: int = 4) -> None:
        super().__init__()
        self._phone = batch[PHONE][:max_images]
        self._dslr = batch[DSLR][:max_images]
        self._every = max(1, every_n_epochs)
        self._writer = tf.summary.create_file_writer(f"{log_dir.rstrip('/')}/images")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self._every:
            return
        enhanced = self.model.enhance(self._phone)
        grid = tf.concat([self._phone, enhanced, self._dslr], axis=2)
        with self._writer.as_default():
            tf.summary.image("phone | enhanced | dslr", grid, step=epoch + 1, max_outputs=grid.shape[0])
        self._writer.flush()
