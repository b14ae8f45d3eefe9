"""WESPE's loss terms, each with its source's own normalisation, and the fixed blur / gray filters.

Two sources, two sets of definitions (picked by name in wespe_recipes.py):

paper  Ignatov et al., "WESPE", CVPRW 2018 (arXiv 1709.01118), Sec. 3:
       colour / texture  -sum_i log D(G(x_i)), a SUM over the batch (the formulas' sum over i, as
                         the authors' DPED code reduce_sums its adversarial loss, train_model.py:65);
                         D: standard GAN cross-entropy, also summed over the batch;
       content           MSE of VGG-19 features (1 / (C H W) ||psi(x) - psi(F(G(x)))||^2, averaged
                         over the batch, as DPED train_model.py:78-79);
       TV                mean squared vertical + mean squared horizontal difference (DPED :91-95).
wespe-keras  GBATZOLIS/Wespe-Keras modelwithVGGloss.py: every term a Keras compile() loss, i.e. the
       mean over batch and all elements (keras 2.2 engine/training_utils.py weighted_masked_objective:
       the loss function's per-element values are averaged over all non-batch axes, times the
       sample weights (ones), then averaged over the batch); the model's loss is then
       sum_k loss_weights[k] * loss_k (engine/training.py compile). So:
       adversarial 'mse' (LSGAN), content 'mae', TV loss_functions.py:110-121.

All functions take float tensors and return float32 scalars. Images are [B, H, W, C] in [0, 1];
discriminator outputs are logits ([B, 1], paper) or patch maps ([B, h, w, 1], wespe-keras).
"""
from __future__ import annotations

import math

import numpy as np

from phone2dslr.trainer.blocks import printed_gaussian_kernel
import tensorflow as tf

# ITU-R BT.601 luma as both sources weigh it: tf.image.rgb_to_grayscale (DPED train_model.py:50-51)
# and Wespe-Keras' fixed 1x1 convolution (modelwithVGGloss.py:90, 234-237).
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def _f32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


# --- Fixed filters -------------------------------------------------------------------------------

# WESPE Sec. 3.2 prints DPED's colour-loss kernel (DPED Sec. 3.1.1): one definition for both.
paper_blur_kernel = printed_gaussian_kernel


def wespe_keras_blur_kernel(kernlen: int = 23, nsig: float = 3.0) -> np.ndarray:
    """Wespe-Keras preprocessing.py:22-31 gauss_kernel (the DPED code's kernel), one channel.

    Normal CDF differences over kernlen cells spanning +-(nsig + interval / 2), interval =
    (2 nsig + 1) / kernlen; the 2-D kernel is the square root of their outer product, normalised
    to sum 1. modelwithVGGloss.py:87-89 calls it with kernlen 23, nsig 3. float32 [kernlen, kernlen].
    """
    interval = (2 * nsig + 1.0) / kernlen
    x = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, kernlen + 1)
    cdf = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    kern1d = np.diff(cdf)
    raw = np.sqrt(np.outer(kern1d, kern1d))
    return (raw / raw.sum()).astype(np.float32)


BLUR_KERNELS = {"paper": paper_blur_kernel, "wespe-keras": wespe_keras_blur_kernel}


# --- Adversarial terms ---------------------------------------------------------------------------
# Each form: generator term (fake -> "real"), and the discriminator's real and fake terms.

def gan_generator_sum(fake_logits: tf.Tensor) -> tf.Tensor:
    """-sum_i log sigmoid(l_i) over all logits (WESPE Sec. 3.2-3.3, L_color / L_texture)."""
    return tf.reduce_sum(tf.nn.softplus(-_f32(fake_logits)))


def gan_real_sum(real_logits: tf.Tensor) -> tf.Tensor:
    """-sum_i log sigmoid(l_i): the discriminator's cross-entropy on real images, summed."""
    return tf.reduce_sum(tf.nn.softplus(-_f32(real_logits)))


def gan_fake_sum(fake_logits: tf.Tensor) -> tf.Tensor:
    """-sum_i log(1 - sigmoid(l_i)): the discriminator's cross-entropy on enhanced images, summed."""
    return tf.reduce_sum(tf.nn.softplus(_f32(fake_logits)))


def lsgan_generator_mean(fake: tf.Tensor) -> tf.Tensor:
    """Keras 'mse' against ones (modelwithVGGloss.py:159, target `valid` :346, :393)."""
    return tf.reduce_mean(tf.square(_f32(fake) - 1.0))


def lsgan_real_mean(real: tf.Tensor) -> tf.Tensor:
    """Keras 'mse' of D(real) against ones (modelwithVGGloss.py:107, 370)."""
    return tf.reduce_mean(tf.square(_f32(real) - 1.0))


def lsgan_fake_mean(fake: tf.Tensor) -> tf.Tensor:
    """Keras 'mse' of D(fake) against zeros (modelwithVGGloss.py:107, 371)."""
    return tf.reduce_mean(tf.square(_f32(fake)))


# name -> (generator term, discriminator real term, discriminator fake term, sums over the batch?)
ADVERSARIAL = {
    "gan-sum": (gan_generator_sum, gan_real_sum, gan_fake_sum, True),
    "lsgan-mean": (lsgan_generator_mean, lsgan_real_mean, lsgan_fake_mean, False),
}


# --- Content (cycle) terms -----------------------------------------------------------------------

def feature_mse(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean squared difference over batch and all feature elements (paper, as DPED :78-79)."""
    return tf.reduce_mean(tf.square(_f32(features) - _f32(target)))


def feature_mae(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Keras 'mae': mean absolute difference over batch and all elements (modelwithVGGloss.py:159)."""
    return tf.reduce_mean(tf.abs(_f32(features) - _f32(target)))


CONTENT = {"mse": feature_mse, "mae": feature_mae}


# --- Total variation -----------------------------------------------------------------------------

def tv_dped(images: tf.Tensor) -> tf.Tensor:
    """mean((x[i+1, j] - x[i, j])^2) + mean((x[i, j+1] - x[i, j])^2), each over its own difference
    tensor (DPED train_model.py:91-95: 2 * l2_loss / size / batch). The paper's L_tv (Sec. 3.4)
    is written 1 / (CHW) ||grad_x G(x) + grad_y G(x)||, the same formula as DPED's paper."""
    x = _f32(images)
    dy = x[:, 1:, :, :] - x[:, :-1, :, :]
    dx = x[:, :, 1:, :] - x[:, :, :-1, :]
    return tf.reduce_mean(tf.square(dy)) + tf.reduce_mean(tf.square(dx))


def tv_wespe_keras(images: tf.Tensor) -> tf.Tensor:
    """loss_functions.py:110-121: a = (x[i, j] - x[i+1, j])^2, b = (x[i, j] - x[i, j+1])^2, both on
    the [:H-1, :W-1] crop, and K.mean(a + b) over [B, H-1, W-1, C]."""
    x = _f32(images)
    corner = x[:, :-1, :-1, :]
    a = tf.square(corner - x[:, 1:, :-1, :])
    b = tf.square(corner - x[:, :-1, 1:, :])
    return tf.reduce_mean(a + b)


TV = {"dped": tv_dped, "wespe-keras": tv_wespe_keras}


def weighted_total(raw: dict[str, tf.Tensor], weights: dict[str, float]) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """Per-term weighted values {term: w * raw} and their sum, for the terms in `weights`.

    The paper: L = L_content + 5e-3 (L_color + L_texture) + 10 L_tv (Sec. 3.5). Wespe-Keras:
    sum_k loss_weights[k] * loss_k (modelwithVGGloss.py:159-160). Raises KeyError for a weighted
    term that was not computed.
    """
    weighted = {k: float(w) * raw[k] for k, w in weights.items()}
    return weighted, tf.add_n(list(weighted.values()))
