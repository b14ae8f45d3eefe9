"""What DPED and WESPE share as Keras models, so each model file holds only its paper's parts.

Batches are dicts {"phone", "dslr"} of float images in [0, 1]. `call()` is the generator alone
(what is exported); `test_step` scores it against the DSLR target and, for reference, scores the
untouched phone input the same way, so every validation log says what the model adds: per-image
PSNR, pooled PSNR, SSIM and MS-SSIM (trainer/metrics.py), logged as val_<name> and val_<name>_input.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import metrics


def unpack_batch(data) -> tuple[tf.Tensor, tf.Tensor]:
    """{'phone': [B,H,W,3], 'dslr': [B,H,W,3]} (float in [0, 1]) -> (phone, dslr)."""
    if isinstance(data, (tuple, list)):
        data = data[0]
    return tf.cast(data["phone"], tf.float32), tf.cast(data["dslr"], tf.float32)


class EnhancementGAN(keras.Model):
    """Base of the GAN models: the generator, loss/metric trackers, inference and validation."""

    LOSS_NAMES: tuple[str, ...] = ()  # what train_step reports; set by each model
    EVAL_NAMES = tuple(metrics.VALIDATION_METRICS) + tuple(f"{n}_input" for n in metrics.VALIDATION_METRICS)

    def __init__(self, generator: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.LOSS_NAMES}
        for name, metric in metrics.VALIDATION_METRICS.items():  # pooled PSNR is no Mean: each its class
            self.trackers[name] = metric(name=name)
            self.trackers[f"{name}_input"] = metric(name=f"{name}_input")

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        if isinstance(inputs, dict):
            inputs = inputs["phone"]
        return self.generator(inputs, training=training)

    def test_step(self, data):
        phone, dslr = unpack_batch(data)
        enhanced = tf.clip_by_value(self.generator(phone, training=False), 0.0, 1.0)
        for name in metrics.VALIDATION_METRICS:
            self.trackers[name].update_state(dslr, enhanced)
            self.trackers[f"{name}_input"].update_state(dslr, phone)
        return {name: self.trackers[name].result() for name in self.EVAL_NAMES}
