"""WESPE (Ignatov et al., CVPRW 2018): weakly supervised enhancement from unpaired photos.

    G: phone (domain A) -> DSLR (domain B).   F: B -> A, the backward generator.
    L_G,F = w_content   * content(VGG(F(G(a))), VGG(a))                    cycle a -> b -> a
          [+ w_content_b * content(VGG(G(F(b))), VGG(b))]                  Wespe-Keras' second cycle
          + w_color     * adv_G(D_color(G(a)))         D_color blurs its input
          + w_texture   * adv_G(D_texture(G(a)))       D_texture turns it gray
          + w_tv        * TV(G(a))
          [+ w_identity * mean|G(b) - b|]                    CycleGAN's identity mapping loss
    D_color and D_texture learn b -> real, G(a) -> fake with the same adversarial form.

What each term is exactly (normalisation, layer, kernel, discriminator, update order) is the
recipe's: wespe_recipes.py holds `paper` and `wespe-keras`, wespe_losses.py the terms, and
wespe_networks.py the networks. Batches carry unpaired `phone` and `dslr` images; their counts may
differ. train_step logs every term raw (`<term>_loss`) and weighted (`<term>_weighted`), their sum
`g_loss`, and `d_color_loss`, `d_texture_loss`.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import precision, recipes
from phone2dslr.trainer.blocks import random_dihedral
from phone2dslr.trainer.dped_networks import DEFAULT_PATCH_SIZE, generator_for
from phone2dslr.trainer.gan import EnhancementGAN, apply_loss, unpack_batch
from phone2dslr.trainer.vgg import DPED_LAYER, content_model
from phone2dslr.trainer.wespe_losses import ADVERSARIAL, BLUR_KERNELS, CONTENT, TV, weighted_total
from phone2dslr.trainer.wespe_networks import (build_dped_discriminator, build_patch_discriminator,  # noqa: F401
                                               build_wespe_keras_discriminator, build_wespe_keras_generator)

_log = logging.getLogger(__name__)

CHOICES = {
    "generator": ("dped-paper", "dped-plain", "wespe-keras"),
    "discriminator": ("dped", "wespe-keras"),
    "blur": tuple(BLUR_KERNELS),
    "adversarial": tuple(ADVERSARIAL),
    "d_schedule": ("joint", "real-then-fake"),
    "content_input": ("vgg", "raw"),
    "content_loss": tuple(CONTENT),
    "tv": tuple(TV),
    "identity": ("none", "mae"),
    "precision": precision.PRECISIONS,
}


class WESPEConfigError(ValueError):
    """A WESPE option with no meaning (unknown name or value); the message is one line."""


@dataclass(frozen=True)
class WESPEConfig:
    """Everything that builds and trains WESPE; the defaults are the paper's (see wespe_recipes.py).

    Recipe options are these field names. f_width: F's filters as a share of G's. d_schedule
    'joint': G, F and both Ds step once on one forward pass; 'real-then-fake': each D takes one
    step on real images, then one on G's (inference-mode) output, then G and F step (Keras
    train_on_batch, modelwithVGGloss.py:366-393). content_input 'raw': VGG sees [0, 1] pixels
    without its ImageNet preprocessing (Wespe-Keras :121-123, 390-391).
    """

    g_filters: int = 64
    f_width: float = 1.0
    num_blocks: int = 4
    head: str = "tanh"
    global_skip: bool = False
    generator: str = "dped-paper"
    discriminator: str = "dped"
    blur: str = "paper"
    patch_size: int = DEFAULT_PATCH_SIZE
    adversarial: str = "gan-sum"
    d_loss_weight: float = 1.0
    d_schedule: str = "joint"
    content: str = "vgg19"
    vgg_weights: str = ""
    content_layer: str = DPED_LAYER
    content_input: str = "vgg"
    content_loss: str = "mse"
    cycles: int = 1
    tv: str = "dped"
    identity: str = "none"
    ema_decay: float = 0.0
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"content": 1.0, "color": 5e-3, "texture": 5e-3, "tv": 10.0})
    learning_rate: float = 5e-4
    beta_1: float = 0.9
    adam_epsilon: float = 1e-8
    augment: bool = False
    jit_compile: bool = False
    precision: str = "float32"

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise WESPEConfigError(f"WESPE {name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.cycles not in (1, 2):
            raise WESPEConfigError(f"WESPE cycles must be 1 (a -> b -> a) or 2 (and b -> a -> b), got {self.cycles}")
        if set(self.loss_weights) != set(self.terms):
            raise WESPEConfigError(f"WESPE loss_weights name {', '.join(sorted(self.loss_weights))}; "
                                   f"with {self.cycles} cycle(s) the terms are {', '.join(self.terms)}")

    @property
    def terms(self) -> tuple[str, ...]:
        """Generator loss terms, in logging order."""
        return (("content",) + (("content_b",) if self.cycles == 2 else ()) + ("color", "texture", "tv")
                + (("identity",) if self.identity != "none" else ()))

    @property
    def f_filters(self) -> int:
        return max(1, round(self.g_filters * self.f_width))

    @classmethod
    def from_train_config(cls, train_cfg: Any, patch_size: int = DEFAULT_PATCH_SIZE) -> "WESPEConfig":
        """The recipe train_cfg names (with its overrides: lr, batch, head, loss_weights), plus the
        config's own fields: filters (G's width), content, vgg_weights, global_skip, jit_compile;
        train.augment false turns off a recipe's augmentation. Raises recipes.RecipeError,
        WESPEConfigError."""
        recipe, _ = recipes.resolve(train_cfg)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(recipe.options) - names)
        if unknown:
            raise WESPEConfigError(f"recipe wespe/{recipe.name}: unknown option(s) {', '.join(unknown)}")
        return cls(**{**recipe.options, "g_filters": train_cfg.filters, "head": recipe.head,
                      "global_skip": train_cfg.global_skip, "patch_size": patch_size,
                      "content": train_cfg.content, "vgg_weights": train_cfg.vgg_weights,
                      "loss_weights": dict(recipe.loss_weights), "learning_rate": recipe.learning_rate,
                      "beta_1": recipe.adam_beta_1, "augment": recipe.augment and train_cfg.augment,
                      "ema_decay": recipe.ema_decay,
                      "jit_compile": train_cfg.jit_compile, "precision": train_cfg.precision})


def loss_names(cfg: WESPEConfig) -> tuple[str, ...]:
    """What train_step reports for this configuration."""
    return (("g_loss",) + tuple(f"{t}_loss" for t in cfg.terms) + tuple(f"{t}_weighted" for t in cfg.terms)
            + ("d_color_loss", "d_texture_loss"))


class WESPE(EnhancementGAN):
    """G, F, colour and texture discriminators and the content network, trained on unpaired batches."""

    def __init__(self, generator: keras.Model, inverse: keras.Model, color_discriminator: keras.Model,
                 texture_discriminator: keras.Model, content: keras.Model, cfg: WESPEConfig, **kwargs):
        super().__init__(generator, ema_decay=cfg.ema_decay, **kwargs)  # G: A -> B
        self.inverse = inverse  # F: B -> A
        self.color_discriminator = color_discriminator
        self.texture_discriminator = texture_discriminator
        self.content = content
        self.spec = cfg
        self.loss_names = loss_names(cfg)  # per configuration, so added here (EVAL_NAMES come from the base)
        for name in loss_names(cfg):
            self.trackers[name] = keras.metrics.Mean(name=name)
        self._adv_g, self._adv_real, self._adv_fake, self._adv_summed = ADVERSARIAL[cfg.adversarial]

    def compile(self, g_optimizer: keras.optimizers.Optimizer, d_color_optimizer: keras.optimizers.Optimizer,
                d_texture_optimizer: keras.optimizers.Optimizer, **kwargs):
        """g_optimizer steps G and F together (one Adam, as both sources)."""
        super().compile(optimizer=g_optimizer, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_color_optimizer = d_color_optimizer
        self.d_texture_optimizer = d_texture_optimizer

    # --- losses (also used by the parity tests) ---------------------------------------------------

    def _features(self, images: tf.Tensor) -> tf.Tensor:
        # Compared in float32 under every policy (trainer/precision.py), as all network outputs below.
        return precision.as_float32(self.content(images, training=False))

    def _translate(self, a: tf.Tensor, b: tf.Tensor, training: bool) -> dict[str, tf.Tensor]:
        def g(x):
            return precision.as_float32(self.generator(x, training=training))

        def f(x):
            return precision.as_float32(self.inverse(x, training=training))

        images = {"fake_b": g(a)}
        images["rec_a"] = f(images["fake_b"])
        if self.spec.cycles == 2:
            images["fake_a"] = f(b)
            images["rec_b"] = g(images["fake_a"])
        if self.spec.identity != "none":
            images["idt_b"] = g(b)
        return images

    def _discriminate(self, disc: keras.Model, images: tf.Tensor, training: bool) -> tf.Tensor:
        return precision.as_float32(disc(images, training=training))

    def _generator_terms(self, a, b, images, color_fake, texture_fake) -> dict[str, tf.Tensor]:
        content = CONTENT[self.spec.content_loss]
        raw = {"content": content(self._features(images["rec_a"]), tf.stop_gradient(self._features(a)))}
        if self.spec.cycles == 2:
            raw["content_b"] = content(self._features(images["rec_b"]), tf.stop_gradient(self._features(b)))
        raw.update(color=self._adv_g(color_fake), texture=self._adv_g(texture_fake),
                   tv=TV[self.spec.tv](images["fake_b"]))
        if self.spec.identity != "none":
            # Zhu et al., CycleGAN (ICCV 2017) Sec. 5.2 and their code's criterionIdt = L1Loss:
            # G must leave photos that already look like the DSLR's unchanged, so it can only
            # change what tells the two cameras apart, not what tells the two sets of scenes apart.
            raw["identity"] = tf.reduce_mean(tf.abs(images["idt_b"] - b))
        weighted, total = weighted_total(raw, self.spec.loss_weights)
        out = {f"{k}_loss": v for k, v in raw.items()}
        out.update({f"{k}_weighted": v for k, v in weighted.items()}, g_loss=total)
        return out

    def _d_term(self, outputs: tf.Tensor, real: bool) -> tf.Tensor:
        return self.spec.d_loss_weight * (self._adv_real if real else self._adv_fake)(outputs)

    def generator_losses(self, a: tf.Tensor, b: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """Generator terms with each discriminator called on G(a) alone (the 'real-then-fake' G step).

        a: [Na, H, W, 3] phone images, b: [Nb, H, W, 3] DSLR images (Nb may differ), float32 in
        [0, 1]. Returns float32 scalars: `<term>_loss` (raw), `<term>_weighted`, `g_loss` (their sum).
        """
        images = self._translate(a, b, training)
        return self._generator_terms(a, b, images,
                                     self._discriminate(self.color_discriminator, images["fake_b"], training),
                                     self._discriminate(self.texture_discriminator, images["fake_b"], training))

    def joint_losses(self, a: tf.Tensor, b: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """Generator and discriminator terms from one forward pass (the 'joint' step).

        Each D sees [b; G(a)] in one call, so its batch norm normalises real and enhanced images
        together. Inputs as generator_losses; returns its terms plus `d_color_loss`, `d_texture_loss`.
        """
        images = self._translate(a, b, training)
        n_real = tf.shape(b)[0]
        both = tf.concat([b, images["fake_b"]], 0)
        color, texture = (self._discriminate(self.color_discriminator, both, training),
                          self._discriminate(self.texture_discriminator, both, training))
        out = self._generator_terms(a, b, images, color[n_real:], texture[n_real:])
        out["d_color_loss"] = self._d_term(color[:n_real], True) + self._d_term(color[n_real:], False)
        out["d_texture_loss"] = self._d_term(texture[:n_real], True) + self._d_term(texture[n_real:], False)
        return out

    def _scale(self, term: str, replicas: float) -> float:
        # Gradients are summed over replicas: a batch mean is divided by their number, a batch sum not.
        summed = self._adv_summed and term in ("color", "texture", "d")
        return 1.0 if summed else 1.0 / replicas

    def _g_objective(self, out: dict[str, tf.Tensor], replicas: float) -> tf.Tensor:
        return tf.add_n([out[f"{t}_weighted"] * self._scale(t, replicas) for t in self.spec.terms])

    # --- training ---------------------------------------------------------------------------------

    def _step_generators(self, tape: tf.GradientTape, objective: tf.Tensor) -> None:
        apply_loss(self.g_optimizer, tape, objective,
                   self.generator.trainable_variables + self.inverse.trainable_variables)

    def _joint_step(self, a, b, replicas: float) -> dict[str, tf.Tensor]:
        with tf.GradientTape(persistent=True) as tape:
            out = self.joint_losses(a, b, training=True)
            g_objective = self._g_objective(out, replicas)
            d_objectives = {k: out[k] * self._scale("d", replicas) for k in ("d_color_loss", "d_texture_loss")}
        self._step_generators(tape, g_objective)
        for key, disc, opt in (("d_color_loss", self.color_discriminator, self.d_color_optimizer),
                               ("d_texture_loss", self.texture_discriminator, self.d_texture_optimizer)):
            apply_loss(opt, tape, d_objectives[key], disc.trainable_variables)
        del tape
        return out

    def _real_then_fake_step(self, a, b, replicas: float) -> dict[str, tf.Tensor]:
        fake_b = precision.as_float32(self.generator(a, training=False))  # G.predict (:366): inference-mode BN
        d_scale, out = self._scale("d", replicas), {}
        for key, disc, opt in (("d_color_loss", self.color_discriminator, self.d_color_optimizer),
                               ("d_texture_loss", self.texture_discriminator, self.d_texture_optimizer)):
            halves = []
            for images, real in ((b, True), (fake_b, False)):  # two train_on_batch calls (:370-377)
                with tf.GradientTape() as tape:
                    loss = self._d_term(self._discriminate(disc, images, True), real)
                    objective = loss * d_scale
                apply_loss(opt, tape, objective, disc.trainable_variables)
                halves.append(loss)
            out[key] = 0.5 * (halves[0] + halves[1])  # what the source logs (:372, :378)
        with tf.GradientTape() as tape:
            out.update(self.generator_losses(a, b, training=True))
            g_objective = self._g_objective(out, replicas)
        self._step_generators(tape, g_objective)
        return out

    def train_step(self, data):
        a, b = unpack_batch(data)
        if self.spec.augment:
            (a,), (b,) = random_dihedral(a), random_dihedral(b)
        replicas = float(tf.distribute.get_strategy().num_replicas_in_sync)
        step = self._joint_step if self.spec.d_schedule == "joint" else self._real_then_fake_step
        out = step(a, b, replicas)
        self.update_generator_average()
        for name in self.loss_names:
            self.trackers[name].update_state(out[name])
        return {name: self.trackers[name].result() for name in self.loss_names}


def raw_input_features(content: keras.Model) -> keras.Model:
    """The content network without its input preprocessing: [0, 1] pixels straight into VGG, as
    Wespe-Keras feeds its VGG19 (modelwithVGGloss.py:121-123, 390-391). Works on vgg.py's and
    vgg_matconvnet.py's models (a '*preprocess' Lambda, then a chain); pixel content is returned
    as it is; a TF-Hub module (its preprocessing is its own) is returned as it is, with a warning."""
    layers = content.layers
    if len(layers) < 3 or not layers[1].name.endswith("preprocess"):
        if content.name != "content_pixel":
            _log.warning("content network %s has no separable preprocessing; Wespe-Keras' raw [0, 1] "
                         "VGG input cannot be reproduced with it", content.name)
        return content
    inputs = x = keras.Input((None, None, 3), name="image")
    for layer in layers[2:]:
        x = layer(x)
    model = keras.Model(inputs, x, name=f"{content.name}_raw_input")
    model.trainable = False
    return model


def build(cfg: WESPEConfig) -> WESPE:
    """Built and compiled WESPE from its config. Call inside strategy.scope() when distributing.

    The networks are built under cfg.precision's Keras policy (trainer/precision.py); the
    optimizers get loss scaling for mixed_float16.
    """
    with precision.policy(cfg.precision):
        model = _build_networks(cfg)

    def adam():
        inner = keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1, epsilon=cfg.adam_epsilon)
        return precision.optimizer(inner, cfg.precision)

    model.compile(g_optimizer=adam(), d_color_optimizer=adam(), d_texture_optimizer=adam(),
                  jit_compile=cfg.jit_compile)
    return model


def _build_networks(cfg: WESPEConfig) -> WESPE:
    if cfg.generator.startswith("dped-"):  # DPED's generators: 'paper' (batch norm) or 'plain'
        def make_generator(filters, name):
            return generator_for(cfg.generator[5:], filters, cfg.head, cfg.global_skip, name=name)
    else:
        def make_generator(filters, name):
            return build_wespe_keras_generator(filters, cfg.head, cfg.num_blocks, cfg.global_skip, name=name)
    blur = BLUR_KERNELS[cfg.blur]()
    if cfg.discriminator == "dped":
        def make_discriminator(preprocess, name):
            return build_dped_discriminator(preprocess, blur, cfg.patch_size, name=name)
    else:
        def make_discriminator(preprocess, name):
            return build_wespe_keras_discriminator(preprocess, blur, name=name)
    content = content_model(cfg.content, cfg.vgg_weights, cfg.content_layer)
    if cfg.content_input == "raw":
        content = raw_input_features(content)
    return WESPE(
        generator=make_generator(cfg.g_filters, "generator"),
        inverse=make_generator(cfg.f_filters, "inverse_generator"),
        color_discriminator=make_discriminator("blur", "color_discriminator"),
        texture_discriminator=make_discriminator("gray", "texture_discriminator"),
        content=content, cfg=cfg, name="wespe")


def create_model(train_cfg: Any, patch_size: int = DEFAULT_PATCH_SIZE) -> WESPE:
    """Built and compiled WESPE from a TrainConfig and its recipe (see WESPEConfig.from_train_config).

    patch_size: side of the square training patches; fixes the paper discriminators' dense size.
    """
    return build(WESPEConfig.from_train_config(train_cfg, patch_size))
