"""What DPED and WESPE share as Keras models, so each model file holds only its paper's parts.

Batches are dicts {"phone", "dslr"} of float images in [0, 1]. `call()` is the generator alone
(what is exported); `test_step` scores it against the DSLR target and, for reference, scores the
untouched phone input the same way, so every validation log says what the model adds: per-image
PSNR, pooled PSNR, SSIM and MS-SSIM (trainer/metrics.py), logged as val_<name> and val_<name>_input.

With `ema_decay` > 0 the model also keeps an exponential moving average of the generator's
weights (BasicSR's `model_ema`, KAIR's `E_decay`: a GAN generator's weights oscillate from step to
step, their average does not). The averaged copy is what validation scores and what is exported.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import metrics, precision


def unpack_batch(data) -> tuple[tf.Tensor, tf.Tensor]:
    """{'phone': [B,H,W,3], 'dslr': [B,H,W,3]} (float in [0, 1]) -> (phone, dslr)."""
    if isinstance(data, (tuple, list)):
        data = data[0]
    return tf.cast(data["phone"], tf.float32), tf.cast(data["dslr"], tf.float32)


def apply_loss(optimizer, tape: tf.GradientTape, loss: tf.Tensor, variables) -> None:
    """One optimizer step on `loss` recorded by `tape` (with loss scaling under mixed_float16)."""
    precision.apply_loss(optimizer, tape, loss, variables)


class EnhancementGAN(keras.Model):
    """Base of the GAN models: the generator, loss/metric trackers, inference and validation."""

    LOSS_NAMES: tuple[str, ...] = ()  # what train_step reports; set by each model
    EVAL_NAMES = tuple(metrics.VALIDATION_METRICS) + tuple(f"{n}_input" for n in metrics.VALIDATION_METRICS)

    def __init__(self, generator: keras.Model, ema_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0: no weight averaging), got {ema_decay}")
        self.generator = generator
        self.ema_decay = float(ema_decay)
        # A copy of G's network that holds the averaged weights: an attribute, so checkpoints (the
        # resumable backup, keep_best's in-memory best) carry it with everything else. Always
        # float32 (also under a mixed policy): it is only validated and exported, never trained.
        self.generator_ema = None
        if self.ema_decay > 0:
            self.generator_ema = precision.float32_clone(generator)  # BasicSR: model_ema(0) = G at start
            self.generator_ema.trainable = False
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.LOSS_NAMES}
        for name, metric in metrics.VALIDATION_METRICS.items():  # pooled PSNR is no Mean: each its class
            self.trackers[name] = metric(name=name)
            self.trackers[f"{name}_input"] = metric(name=f"{name}_input")

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def exported_generator(self) -> keras.Model:
        """What validation scores and the Trainer exports: the averaged generator when ema_decay > 0.
        Under a mixed policy without averaging it computes in that policy (export it through
        precision.float32_model); call `enhance` for float32 output either way."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def update_generator_average(self) -> None:
        """After a generator step: w_ema <- d w_ema + (1 - d) w, for every weight of G (trainable and
        batch-norm statistics alike). BasicSR basicsr/models/sr_model.py model_ema; the update runs
        through tf's assign_moving_average, which averages over replicas under a tf.distribute
        strategy. A no-op without averaging."""
        if self.generator_ema is None:
            return
        for average, weight in zip(self.generator_ema.weights, self.generator.weights):
            keras.backend.moving_average_update(average, weight, self.ema_decay)

    def enhance(self, phone: tf.Tensor) -> tf.Tensor:
        """The exported generator's inference on [B, H, W, 3] float images in [0, 1]: float32
        [B, H, W, 3], clipped to [0, 1]."""
        return tf.clip_by_value(precision.as_float32(self.exported_generator(phone, training=False)), 0.0, 1.0)

    def call(self, inputs, training=False):
        if isinstance(inputs, dict):
            inputs = inputs["phone"]
        return self.generator(inputs, training=training)

    def test_step(self, data):
        phone, dslr = unpack_batch(data)
        enhanced = self.enhance(phone)
        for name in metrics.VALIDATION_METRICS:
            self.trackers[name].update_state(dslr, enhanced)
            self.trackers[f"{name}_input"].update_state(dslr, phone)
        return {name: self.trackers[name].result() for name in self.EVAL_NAMES}
