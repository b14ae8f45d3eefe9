"""DPED (Ignatov et al., ICCV 2017): a residual generator trained on aligned phone/DSLR pairs.

    enhanced = G(phone)
    L = w_content * ||VGG(enhanced) - VGG(dslr)||^2         content (relu5_4)
      + w_color   * ||blur(enhanced) - blur(dslr)||^2       colour (21x21 Gaussian, sigma 3)
      + w_texture * -log D(gray(enhanced))                  texture (adversarial, on grayscale)
      + w_tv      * TV(enhanced)                            smoothness
    D learns gray(dslr) -> real, gray(enhanced) -> fake.

Differences from the official code, on purpose: no normalisation layers in G (as the paper's
figure; the code used instance norm); the generator's adversarial term is the non-saturating
-log D(G(x)) instead of -loss_D; D sees each batch's real and fake images together in one call
(the code swapped a random subset), so its batch norm sees both; losses are means (see losses.py).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import losses, recipes
from phone2dslr.trainer.blocks import random_dihedral, residual_block, rgb_to_gray
from phone2dslr.trainer.gan import EnhancementGAN, unpack_batch
from phone2dslr.trainer.vgg import DPED_LAYER, content_model

HEADS = ("tanh", "conv1x1")
DEFAULT_PATCH_SIZE = 100  # DPED's training patches; the discriminator is built for one size


def build_generator(filters: int = 64, head: str = "conv1x1", num_blocks: int = 4,
                    name: str = "generator", global_skip: bool = False) -> keras.Model:
    """Image -> enhanced image, any H and W; stride 1 throughout, receptive field 37 pixels.

    head 'tanh': tanh(x) * 0.58 + 0.5 as the official code (range [-0.08, 1.08], clip for display);
    head 'conv1x1': a final learned 1x1 convolution (a per-pixel colour matrix), linear output.
    global_skip (conv1x1 only; not in the paper): the network predicts a correction added to the
    input, so it starts near the identity and beats the phone photo within minutes of CPU
    training; the demo uses it, paper reproductions should not.
    """
    if global_skip and head != "conv1x1":
        raise ValueError("global_skip needs the conv1x1 head (tanh's output is absolute, not a correction)")
    if head not in HEADS:
        raise ValueError(f"generator head {head!r} is not one of {', '.join(HEADS)}")
    inputs = keras.Input((None, None, 3), name="phone")
    x = keras.layers.Conv2D(filters, 9, padding="same", activation="relu", name="conv_in")(inputs)
    for i in range(num_blocks):
        x = residual_block(x, filters, name=f"res{i + 1}")
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv_post1")(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv_post2")(x)
    x = keras.layers.Conv2D(3, 9, padding="same", name="conv_out")(x)
    if head == "tanh":
        x = keras.layers.Activation("tanh", name="tanh")(x)
        x = keras.layers.Rescaling(0.58, offset=0.5, name="enhanced")(x)
    elif global_skip:
        # Zero-initialised: the untrained generator is exactly the identity, never worse than the input.
        x = keras.layers.Conv2D(3, 1, kernel_initializer="zeros", name="correction")(x)
        x = keras.layers.Add(name="enhanced")([inputs, x])
    else:
        x = keras.layers.Conv2D(3, 1, name="enhanced")(x)
    return keras.Model(inputs, x, name=name)


def build_discriminator(patch_size: int = DEFAULT_PATCH_SIZE, name: str = "discriminator") -> keras.Model:
    """Grayscale [patch, patch, 1] -> one real/fake logit. The dense layer's input size follows
    from patch_size (stride 16 overall), so build one per training patch size."""
    def conv(x, filters, kernel, stride, i, norm=True):
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", name=f"conv{i}")(x)
        if norm:
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        return keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)

    inputs = keras.Input((patch_size, patch_size, 1), name="gray")
    x = conv(inputs, 48, 11, 4, 1, norm=False)
    x = conv(x, 128, 5, 2, 2)
    x = conv(x, 192, 3, 1, 3)
    x = conv(x, 192, 3, 1, 4)
    x = conv(x, 128, 3, 2, 5)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(1024, name="fc")(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu_fc")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="logit")(x), name=name)


class DPED(EnhancementGAN):
    """Generator, discriminator and content network, trained with DPED's four losses."""

    LOSS_NAMES = ("g_loss", "content_loss", "color_loss", "texture_loss", "tv_loss", "d_loss", "d_accuracy")

    def __init__(self, generator: keras.Model, discriminator: keras.Model, content: keras.Model,
                 loss_weights: dict[str, float], augment: bool = True, **kwargs):
        super().__init__(generator, **kwargs)
        self.discriminator = discriminator
        self.content = content
        self.loss_weighting = {k: float(loss_weights[k]) for k in ("content", "color", "texture", "tv")}
        self.augment = augment

    def compile(self, g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer,
                **kwargs):
        super().compile(optimizer=g_optimizer, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    def train_step(self, data):
        phone, dslr = unpack_batch(data)
        if self.augment:
            phone, dslr = random_dihedral(phone, dslr)
        w = self.loss_weighting
        # Gradients are summed over replicas, so each replica's loss is divided by their number.
        per_replica = 1.0 / tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape(persistent=True) as tape:
            enhanced = self.generator(phone, training=True)
            logits = self.discriminator(rgb_to_gray(tf.concat([dslr, enhanced], 0)), training=True)
            real_logits, fake_logits = tf.split(logits, 2)
            target_features = tf.stop_gradient(self.content(dslr, training=False))
            out = {
                "content_loss": losses.content_loss(self.content(enhanced, training=False), target_features),
                "color_loss": losses.color_loss(enhanced, dslr),
                "texture_loss": losses.gan_generator_loss(fake_logits),
                "tv_loss": losses.total_variation_loss(enhanced),
            }
            out["g_loss"] = (w["content"] * out["content_loss"] + w["color"] * out["color_loss"]
                             + w["texture"] * out["texture_loss"] + w["tv"] * out["tv_loss"])
            out["d_loss"] = losses.gan_discriminator_loss(real_logits, fake_logits)
            g_total, d_total = out["g_loss"] * per_replica, out["d_loss"] * per_replica
        g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_total, g_vars), g_vars))
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_total, d_vars), d_vars))
        del tape
        out["d_accuracy"] = losses.discriminator_accuracy(real_logits, fake_logits)
        for name in self.LOSS_NAMES:
            self.trackers[name].update_state(out[name])
        return {name: self.trackers[name].result() for name in self.LOSS_NAMES}



def create_model(train_cfg, patch_size: int = DEFAULT_PATCH_SIZE) -> DPED:
    """Built and compiled DPED from a TrainConfig (preset + explicit loss weights, content, head,
    filters, learning rate, augment, jit_compile). Call inside strategy.scope() when distributing.

    patch_size: side of the square training patches (DataConfig.patch_size); fixes D's dense size.
    """
    recipe, _ = recipes.resolve(train_cfg)
    weights = recipe.loss_weights
    model = DPED(
        generator=build_generator(train_cfg.filters, recipe.head, global_skip=train_cfg.global_skip),
        discriminator=build_discriminator(patch_size),
        content=content_model(train_cfg.content, train_cfg.vgg_weights, DPED_LAYER),
        loss_weights=weights,
        augment=train_cfg.augment,
        name="dped",
    )
    model.compile(
        g_optimizer=keras.optimizers.Adam(recipe.learning_rate, beta_1=recipe.adam_beta_1),
        d_optimizer=keras.optimizers.Adam(recipe.learning_rate, beta_1=recipe.adam_beta_1),
        jit_compile=train_cfg.jit_compile,
    )
    return model
