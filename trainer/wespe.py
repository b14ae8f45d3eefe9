"""WESPE (Ignatov et al., CVPRW 2018): weakly supervised enhancement from unpaired photos.

    G: phone (domain A) -> DSLR (domain B), the DPED generator.   F: B -> A, a narrower one.
    L_G,F = w_content * (||feat(F(G(a))) - feat(a)||^2 + ||feat(G(F(b))) - feat(b)||^2)   cycle content
          + w_color   * (D_color(blur(G(a))) - 1)^2                                        LSGAN
          + w_texture * (D_texture(gray(G(a))) - 1)^2                                      LSGAN
          + w_tv      * TV(G(a))
    D_color sees blurred images, D_texture grayscale ones; both are PatchGANs (a map of scores).

The paper trains F only through the a->G->F cycle; we also add the b->F->G cycle (both compared on
content features). Batches carry unpaired `phone` and `dslr` images; they may differ in count.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import losses, recipes
from phone2dslr.trainer.blocks import gaussian_blur, random_dihedral, rgb_to_gray
from phone2dslr.trainer.dped import build_generator
from phone2dslr.trainer.gan import EnhancementGAN, unpack_batch
from phone2dslr.trainer.vgg import WESPE_LAYER, content_model


@dataclass
class WESPEConfig:
    """WESPE hyperparameters; `from_train_config` maps a TrainConfig onto them."""

    g_filters: int = 64  # G: phone -> DSLR
    f_filters: int = 32  # F: DSLR -> phone, the easier direction
    num_blocks: int = 4
    head: str = "conv1x1"
    global_skip: bool = False  # see dped.build_generator
    d_filters: int = 32  # PatchGAN width of the first layer (doubles per strided layer)
    d_strided_layers: int = 3
    content: str = "pixel"  # pixel | vgg19
    vgg_weights: str = ""
    content_layer: str = WESPE_LAYER  # relu2_2, as the WESPE implementation
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    augment: bool = True
    jit_compile: bool = False
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"content": 1.0, "color": 5e-3, "texture": 5e-3, "tv": 10.0})  # paper

    @classmethod
    def from_train_config(cls, train_cfg) -> "WESPEConfig":
        """G width = filters, F width = filters // 2; lr from the TrainConfig (set 2e-4 there for
        the paper's value); explicit loss_weights override the defaults (loss_preset is DPED's)."""
        base = cls()
        recipe, _ = recipes.resolve(train_cfg)
        return replace(
            base, g_filters=train_cfg.filters, f_filters=max(1, train_cfg.filters // 2),
            head=recipe.head, global_skip=train_cfg.global_skip, content=train_cfg.content, vgg_weights=train_cfg.vgg_weights,
            learning_rate=recipe.learning_rate, beta_1=recipe.adam_beta_1, augment=train_cfg.augment,
            jit_compile=train_cfg.jit_compile,
            loss_weights=dict(recipe.loss_weights),
        )


def build_patch_discriminator(channels: int, filters: int = 32, strided_layers: int = 3,
                              name: str = "patch_discriminator") -> keras.Model:
    """Fully convolutional PatchGAN: [H, W, channels] -> [H/2^n, W/2^n, 1] map of scores, any size."""
    inputs = keras.Input((None, None, channels), name="image")
    x = inputs
    for i in range(strided_layers):
        x = keras.layers.Conv2D(filters * 2 ** i, 4, strides=2, padding="same", name=f"conv{i + 1}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i + 1}")(x)
    x = keras.layers.Conv2D(filters * 2 ** strided_layers, 4, padding="same", name="conv_last")(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu_last")(x)
    return keras.Model(inputs, keras.layers.Conv2D(1, 4, padding="same", name="score")(x), name=name)


class WESPE(EnhancementGAN):
    """G, F, colour and texture PatchGANs and the content network, trained on unpaired batches."""

    LOSS_NAMES = ("g_loss", "content_loss", "color_loss", "texture_loss", "tv_loss",
                  "d_color_loss", "d_texture_loss")

    def __init__(self, generator: keras.Model, inverse: keras.Model, color_discriminator: keras.Model,
                 texture_discriminator: keras.Model, content: keras.Model, loss_weights: dict[str, float],
                 augment: bool = True, **kwargs):
        super().__init__(generator, **kwargs)  # G: A -> B
        self.inverse = inverse  # F: B -> A
        self.color_discriminator = color_discriminator
        self.texture_discriminator = texture_discriminator
        self.content = content
        self.loss_weighting = {k: float(loss_weights[k]) for k in ("content", "color", "texture", "tv")}
        self.augment = augment

    def compile(self, g_optimizer, f_optimizer, d_color_optimizer, d_texture_optimizer, **kwargs):
        super().compile(optimizer=g_optimizer, **kwargs)
        self.g_optimizer = g_optimizer
        self.f_optimizer = f_optimizer
        self.d_color_optimizer = d_color_optimizer
        self.d_texture_optimizer = d_texture_optimizer

    def train_step(self, data):
        a, b = unpack_batch(data)
        if self.augment:
            (a,), (b,) = random_dihedral(a), random_dihedral(b)
        w = self.loss_weighting
        per_replica = 1.0 / tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape(persistent=True) as tape:
            fake_b = self.generator(a, training=True)
            fake_a = self.inverse(b, training=True)
            cycle_a = self.inverse(fake_b, training=True)
            cycle_b = self.generator(fake_a, training=True)
            feat_a = tf.stop_gradient(self.content(a, training=False))
            feat_b = tf.stop_gradient(self.content(b, training=False))
            real_color = self.color_discriminator(gaussian_blur(b), training=True)
            fake_color = self.color_discriminator(gaussian_blur(fake_b), training=True)
            real_texture = self.texture_discriminator(rgb_to_gray(b), training=True)
            fake_texture = self.texture_discriminator(rgb_to_gray(fake_b), training=True)
            out = {
                "content_loss": losses.content_loss(self.content(cycle_a, training=False), feat_a)
                + losses.content_loss(self.content(cycle_b, training=False), feat_b),
                "color_loss": losses.lsgan_generator_loss(fake_color),
                "texture_loss": losses.lsgan_generator_loss(fake_texture),
                "tv_loss": losses.total_variation_loss(fake_b),
                "d_color_loss": losses.lsgan_discriminator_loss(real_color, fake_color),
                "d_texture_loss": losses.lsgan_discriminator_loss(real_texture, fake_texture),
            }
            out["g_loss"] = (w["content"] * out["content_loss"] + w["color"] * out["color_loss"]
                             + w["texture"] * out["texture_loss"] + w["tv"] * out["tv_loss"])
            totals = {k: out[k] * per_replica for k in ("g_loss", "d_color_loss", "d_texture_loss")}
        for loss_name, net, opt in (
            ("g_loss", self.generator, self.g_optimizer),
            ("g_loss", self.inverse, self.f_optimizer),
            ("d_color_loss", self.color_discriminator, self.d_color_optimizer),
            ("d_texture_loss", self.texture_discriminator, self.d_texture_optimizer),
        ):
            grads = tape.gradient(totals[loss_name], net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables))
        del tape
        for name in self.LOSS_NAMES:
            self.trackers[name].update_state(out[name])
        return {name: self.trackers[name].result() for name in self.LOSS_NAMES}



def build(cfg: WESPEConfig) -> WESPE:
    """Built and compiled WESPE from its config. Call inside strategy.scope() when distributing."""
    model = WESPE(
        generator=build_generator(cfg.g_filters, cfg.head, cfg.num_blocks, name="generator",
                                  global_skip=cfg.global_skip),
        inverse=build_generator(cfg.f_filters, cfg.head, cfg.num_blocks, name="inverse_generator",
                                global_skip=cfg.global_skip),
        color_discriminator=build_patch_discriminator(3, cfg.d_filters, cfg.d_strided_layers,
                                                      name="color_discriminator"),
        texture_discriminator=build_patch_discriminator(1, cfg.d_filters, cfg.d_strided_layers,
                                                        name="texture_discriminator"),
        content=content_model(cfg.content, cfg.vgg_weights, cfg.content_layer),
        loss_weights=cfg.loss_weights,
        augment=cfg.augment,
        name="wespe",
    )

    def adam():
        return keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1)

    model.compile(g_optimizer=adam(), f_optimizer=adam(), d_color_optimizer=adam(),
                  d_texture_optimizer=adam(), jit_compile=cfg.jit_compile)
    return model


def create_model(train_cfg) -> WESPE:
    """Built and compiled WESPE from a TrainConfig (see WESPEConfig.from_train_config)."""
    return build(WESPEConfig.from_train_config(train_cfg))
