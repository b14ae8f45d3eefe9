"""DPED's loss terms as each source normalises them; the recipes (trainer/dped_recipes.py) name the form.

Loss weights are tuned for one normalisation: the official code's colour term is a per-image
SUM (x 15,000 for 100x100x3 patches against a mean), its texture term a sum over the batch, so
its weights 10 / 0.5 / 1 / 2000 mean something only with those sums. Each function here states
one source's formula, cited by file:line (aiff22/DPED = "official", JuheonYi/DPED-TensorFlow =
"rebalanced") or paper section; tests/trainer/test_dped_parity.py restates each in NumPy.

Images are float [B, H, W, 3] in [0, 1]; every function returns a float32 scalar. B is the batch
the function is given (per replica), where the official code divides by its configured
batch_size (the same number when batches are full).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from phone2dslr.trainer.blocks import (dped_code_kernel, gaussian_blur, printed_gaussian_kernel,
                                       sampled_gaussian_kernel)

COLOR_FORMS = ("half-sum", "sum", "255-mean", "mean")
TV_FORMS = ("l2-mean", "l1-sum")
TEXTURE_FORMS = ("softmax-swaps", "sigmoid-sum", "logit-labels", "sigmoid-mean")
BLURS = ("dped-code", "gaussian", "paper-printed")


class LossFormError(ValueError):
    """A loss form or blur that no DPED recipe defines (one-line message)."""


def _f32(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def _batch(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.shape(x)[0], tf.float32)


def blur_kernel(blur: str, size: int, sigma: float) -> np.ndarray:
    """The colour loss's [size, size] kernel: 'dped-code' is utils.gauss_kernel(size, sigma)
    (official utils.py:20-29, also rebalanced ops.py:23-32; sigma there is its `nsig`), 'gaussian'
    a sampled Gaussian of standard deviation sigma px normalised to sum 1, 'paper-printed' the
    paper's G(k, l) = A exp(-k^2 / (2 sigma) - l^2 / (2 sigma)) taken as printed (A = 0.053,
    sigma = 3 where a variance goes; std 1.73 px; blocks.printed_gaussian_kernel)."""
    if blur == "dped-code":
        return dped_code_kernel(size, sigma)
    if blur == "gaussian":
        return sampled_gaussian_kernel(size, sigma)
    if blur == "paper-printed":
        return printed_gaussian_kernel(size, sigma=sigma)
    raise LossFormError(f"blur {blur!r} is not one of {', '.join(BLURS)}")


def color_loss(enhanced: tf.Tensor, target: tf.Tensor, kernel: np.ndarray, form: str) -> tf.Tensor:
    """Squared difference of the blurred images (depthwise 'SAME' conv, official utils.py:32-34),
    normalised as the recipe's source:

    'half-sum' (official train_model.py:86): sum((blur(dslr) - blur(enh))^2) / (2 B);
    'sum'      (paper, colour loss ||X_b - Y_b||_2^2 per image): sum(...) / B;
    '255-mean' (rebalanced DPED.py:107): 255 * mean(...), the mean over B, H, W and C.
    Its images are (img - mean_RGB) / 255 (ops.py:8-9), whose differences equal ours in [0, 1].
    'mean'     (our demo recipe): mean(...) over B, H, W and C, on the scale of the pixel MSE.
    """
    diff2 = tf.square(gaussian_blur(_f32(target), kernel=kernel) - gaussian_blur(_f32(enhanced), kernel=kernel))
    if form == "half-sum":
        return tf.reduce_sum(diff2) / (2.0 * _batch(enhanced))
    if form == "sum":
        return tf.reduce_sum(diff2) / _batch(enhanced)
    if form == "255-mean":
        return 255.0 * tf.reduce_mean(diff2)
    if form == "mean":
        return tf.reduce_mean(diff2)
    raise LossFormError(f"colour loss form {form!r} is not one of {', '.join(COLOR_FORMS)}")


def content_loss(features: tf.Tensor, target_features: tf.Tensor) -> tf.Tensor:
    """Mean squared feature difference over B, H, W and C; all three sources normalise so:
    official train_model.py:78-79, 2 * l2_loss(diff) / (feature size * batch) (l2_loss = sum / 2);
    paper, 1 / (C_j H_j W_j) ||psi_j(F_W(I_s)) - psi_j(I_t)||^2 per image, averaged over the batch;
    rebalanced DPED.py:115, reduce_mean(square(diff))."""
    return tf.reduce_mean(tf.square(_f32(features) - _f32(target_features)))


def tv_loss(images: tf.Tensor, form: str) -> tf.Tensor:
    """Total variation of the enhanced images, forward differences along H and W.

    'l2-mean' (official train_model.py:90-95): 2 * (x_tv / x_size + y_tv / y_size) / B with
    l2_loss sums and per-image sizes, i.e. mean(dx^2) + mean(dy^2); the paper's
    1 / (CHW) ||grad_x + grad_y|| read the same way (see dped_recipes.py).
    'l1-sum' (rebalanced DPED.py:118): reduce_mean over the batch of tf.image.total_variation,
    the per-image sum of |dx| + |dy|.
    """
    x = _f32(images)
    dy = x[:, 1:, :, :] - x[:, :-1, :, :]
    dx = x[:, :, 1:, :] - x[:, :, :-1, :]
    if form == "l2-mean":
        return tf.reduce_mean(tf.square(dx)) + tf.reduce_mean(tf.square(dy))
    if form == "l1-sum":
        return (tf.reduce_sum(tf.abs(dx)) + tf.reduce_sum(tf.abs(dy))) / _batch(images)
    raise LossFormError(f"TV loss form {form!r} is not one of {', '.join(TV_FORMS)}")


# --- Adversarial ("texture") terms. The discriminator sees grayscale images.

def _log_clip(p: tf.Tensor) -> tf.Tensor:
    return tf.math.log(tf.clip_by_value(_f32(p), 1e-10, 1.0))  # train_model.py:65


def official_texture_loss(fake_probabilities: tf.Tensor) -> tf.Tensor:
    """Generator's texture term, official train_model.py:63-66 with adv_ = 0 (all enhanced, :155):
    -loss_discrim = sum_i log(clip(p_i[fake], 1e-10, 1)); [B, 2] softmax (real, fake) -> scalar."""
    return tf.reduce_sum(_log_clip(fake_probabilities[:, 1]))


def official_discriminator_loss(probabilities: tf.Tensor, swaps: tf.Tensor) -> tf.Tensor:
    """-sum(target * log(clip(p, 1e-10, 1))), target = [swap, 1 - swap] (train_model.py:63-65):
    swaps [B] in {0, 1}, 1 where D was shown the DSLR image (:55, :163)."""
    swaps = tf.reshape(_f32(swaps), [-1, 1])
    return -tf.reduce_sum(tf.concat([swaps, 1.0 - swaps], 1) * _log_clip(probabilities))


def official_accuracy(probabilities: tf.Tensor, swaps: tf.Tensor) -> tf.Tensor:
    """Share of argmax(p) == argmax(target) (train_model.py:68-69)."""
    predicted_real = tf.argmax(probabilities, 1) == 0
    return tf.reduce_mean(tf.cast(predicted_real == (tf.reshape(swaps, [-1]) > 0.5), tf.float32))


def paper_texture_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Paper, texture loss: -sum_i log D(F_W(I_s)), D a sigmoid probability -> sum softplus(-logit)."""
    return tf.reduce_sum(tf.nn.softplus(-_f32(fake_logits)))


def paper_discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """-sum_i [log D(I_t) + log(1 - D(F_W(I_s)))]: the cross-entropy the paper's D minimises,
    summed over the batch as its texture term (the text gives no formula for D's loss)."""
    return tf.reduce_sum(tf.nn.softplus(-_f32(real_logits))) + tf.reduce_sum(tf.nn.softplus(_f32(fake_logits)))


def mean_texture_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Demo recipe: the non-saturating generator loss -log D(G(x)) averaged over the batch
    (Goodfellow et al. 2014, Sec. 3), mean softplus(-logit): its size does not grow with the batch."""
    return tf.reduce_mean(tf.nn.softplus(-_f32(fake_logits)))


def mean_discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Demo recipe: the discriminator's cross-entropy, real -> 1 and fake -> 0, each averaged."""
    return tf.reduce_mean(tf.nn.softplus(-_f32(real_logits))) + tf.reduce_mean(tf.nn.softplus(_f32(fake_logits)))


def rebalanced_texture_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Rebalanced DPED.py:110, as written: mean(sigmoid_cross_entropy_with_logits(
    logits=logits_dslr, labels=logits_enhanced)) (ops.py:17-19). The generator's gradient flows
    through the labels only: d/dz = -logits_dslr / B."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=_f32(fake_logits),
                                                                  logits=_f32(real_logits)))


def rebalanced_discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Rebalanced DPED.py:135-138: mean CE(logits_dslr, 1) + mean CE(logits_fake, 0)."""
    real, fake = _f32(real_logits), _f32(fake_logits)
    return (tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(real), logits=real))
            + tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(fake), logits=fake)))


def logit_accuracy(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Share of real images with logit > 0 and fake ones with logit <= 0."""
    correct = tf.concat([tf.reshape(real_logits, [-1]) > 0, tf.reshape(fake_logits, [-1]) <= 0], 0)
    return tf.reduce_mean(tf.cast(correct, tf.float32))


@dataclass(frozen=True)
class LossForms:
    """How one recipe computes DPED's terms (the recipe's `options`, see dped_recipes.py).

    color / tv / texture: one of COLOR_FORMS / TV_FORMS / TEXTURE_FORMS. blur, blur_size,
    blur_sigma: the colour loss's kernel (`blur_kernel`). d_batch: 'next' = the discriminator
    steps on the second half of each batch, after the generator's update (the official code draws
    a new batch, train_model.py:160); 'same' = on the generator's batch and its pre-update output.
    image_offset: RGB subtracted from [0, 1] images before they reach the discriminator
    (rebalanced: mean_RGB / 255, ops.py:6-9); the generator carries its own (dped_networks.py).
    """

    color: str
    tv: str
    texture: str
    blur: str
    blur_size: int = 21
    blur_sigma: float = 3.0
    d_batch: str = "same"
    image_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.color, COLOR_FORMS, "color"), (self.tv, TV_FORMS, "tv"),
                                     (self.texture, TEXTURE_FORMS, "texture"), (self.blur, BLURS, "blur"),
                                     (self.d_batch, ("same", "next"), "d_batch")):
            if value not in allowed:
                raise LossFormError(f"DPED {what} form {value!r} is not one of {', '.join(allowed)}")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "LossForms":
        """The forms named in a recipe's options (unknown keys are other options and ignored)."""
        names = cls.__dataclass_fields__
        kwargs = {k: v for k, v in options.items() if k in names}
        if "image_offset" in kwargs:
            kwargs["image_offset"] = tuple(float(v) for v in kwargs["image_offset"])
        return cls(**kwargs)

    def kernel(self) -> np.ndarray:
        return blur_kernel(self.blur, self.blur_size, self.blur_sigma)
