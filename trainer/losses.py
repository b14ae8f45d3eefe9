"""Mean-normalised loss functions (WESPE, and generic use); each a plain function over tensors
returning a scalar.

All are means (over batch, pixels and channels), so their sizes do not depend on image size or
batch size. DPED's recipes normalise each term as their sources do (sums, halves, x255): those
forms live in dped_losses.py, next to the weights tuned for them.
"""
from __future__ import annotations

import tensorflow as tf

from phone2dslr.trainer.blocks import BLUR_SIGMA, BLUR_SIZE, gaussian_blur


def _mse(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def color_loss(enhanced: tf.Tensor, target: tf.Tensor, size: int = BLUR_SIZE,
               sigma: float = BLUR_SIGMA) -> tf.Tensor:
    """MSE between Gaussian-blurred images: compares colour and brightness, not texture (DPED)."""
    return _mse(gaussian_blur(enhanced, size, sigma), gaussian_blur(target, size, sigma))


def content_loss(features: tf.Tensor, target_features: tf.Tensor) -> tf.Tensor:
    """MSE between feature maps (VGG activations, or pixels), i.e. normalised by their size."""
    return _mse(features, target_features)


def total_variation_loss(images: tf.Tensor) -> tf.Tensor:
    """Mean squared difference of neighbouring pixels, vertically plus horizontally (DPED's TV).

    Zero for a constant image.
    """
    images = tf.cast(images, tf.float32)
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return tf.reduce_mean(tf.square(dy)) + tf.reduce_mean(tf.square(dx))


# --- Adversarial pieces: one logit per image, sigmoid cross-entropy, means over the batch; the
# generator's non-saturating form -log D(G(x)). (DPED's per-source texture terms: dped_losses.py.)

def gan_discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Sigmoid cross-entropy: real -> 1, fake -> 0."""
    real_logits, fake_logits = tf.cast(real_logits, tf.float32), tf.cast(fake_logits, tf.float32)
    return tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(tf.nn.softplus(fake_logits))


def gan_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating generator loss: fake -> 1."""
    return tf.reduce_mean(tf.nn.softplus(-tf.cast(fake_logits, tf.float32)))


def discriminator_accuracy(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Share of real and fake images the discriminator labels correctly (as DPED logs)."""
    correct = tf.concat([tf.reshape(real_logits, [-1]) > 0, tf.reshape(fake_logits, [-1]) <= 0], 0)
    return tf.reduce_mean(tf.cast(correct, tf.float32))


# --- LSGAN (least squares; WESPE), over patch maps or single scores.

def lsgan_discriminator_loss(real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
    """0.5 * (E[(D(real) - 1)^2] + E[D(fake)^2])."""
    real, fake = tf.cast(real, tf.float32), tf.cast(fake, tf.float32)
    return 0.5 * (tf.reduce_mean(tf.square(real - 1.0)) + tf.reduce_mean(tf.square(fake)))


def lsgan_generator_loss(fake: tf.Tensor) -> tf.Tensor:
    """E[(D(G(x)) - 1)^2]."""
    return tf.reduce_mean(tf.square(tf.cast(fake, tf.float32) - 1.0))
