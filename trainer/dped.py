"""DPED (Ignatov et al., ICCV 2017): a residual generator trained on aligned phone/DSLR pairs.

    enhanced = G(phone)
    L_G = w_content * content(VGG relu5_4)  + w_color * colour(blurred images)
        + w_texture * texture(D on grayscale) + w_tv * TV(enhanced)
    D learns gray(DSLR) -> real, gray(enhanced) -> fake.

Every term is normalised as the recipe's source does (trainer/dped_losses.py), with the weights
tuned for that normalisation, the source's blur kernel, networks (trainer/dped_networks.py),
optimiser and batch handling (trainer/dped_recipes.py):
- discriminator batch 'next' (official-code): the generator steps on the first half of the
  batch, then the discriminator on the second half with the updated generator, each example shown
  to D as either its enhanced or its DSLR image at random (train_model.py:147-169);
- 'same' (paper, rebalanced): one forward pass; D's loss on the batch's DSLR images and the
  generator's pre-update output (rebalanced DPED.py:212-213 feeds that output back to D).
Recipes with `pretrain_d_steps` (rebalanced, DPED.py:180-199) first train D alone, phone photos
as the fakes, for that many steps (counted by D's optimizer, so a resumed run continues); the
generator's terms are then not logged (their means cover the joint steps only).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import dped_losses as L
from phone2dslr.trainer import precision, recipes
from phone2dslr.trainer.blocks import random_dihedral, rgb_to_gray
from phone2dslr.trainer.dped_networks import (DEFAULT_PATCH_SIZE, HEADS, build_discriminator,  # noqa: F401
                                              build_generator, build_official_generator, generator_for)
from phone2dslr.trainer.gan import EnhancementGAN, apply_loss, unpack_batch
from phone2dslr.trainer.vgg import DPED_LAYER, content_model

TERMS = ("content", "color", "texture", "tv")


class DPED(EnhancementGAN):
    """Generator, discriminator and content network, trained with DPED's four losses.

    forms: how the recipe computes each term (dped_losses.LossForms). train_step logs each raw
    term (`color_loss`), each weighted term (`w_color_loss` = weight x raw), their sum `g_loss`,
    and `d_loss`, `d_accuracy`.
    """

    LOSS_NAMES = ("g_loss", *(f"{t}_loss" for t in TERMS), *(f"w_{t}_loss" for t in TERMS),
                  "d_loss", "d_accuracy")

    def __init__(self, generator: keras.Model, discriminator: keras.Model, content: keras.Model,
                 loss_weights: dict[str, float], forms: L.LossForms, augment: bool = False,
                 pretrain_d_steps: int = 0, seed: int = 0, **kwargs):
        super().__init__(generator, **kwargs)
        self.discriminator = discriminator
        self.content = content
        self.loss_weighting = {k: float(loss_weights[k]) for k in TERMS}
        self.forms = forms
        self.kernel = forms.kernel()
        self.augment = augment
        self.pretrain_d_steps = int(pretrain_d_steps)
        self._pretraining = self.pretrain_d_steps > 0  # the phase train_step is traced for
        self.seed = int(seed)

    def compile(self, g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer,
                **kwargs):
        super().compile(optimizer=g_optimizer, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        if self.pretrain_d_steps:  # slots made now, not in the retraced step after pre-training
            g_optimizer.build(self.generator.trainable_variables)
            d_optimizer.build(self.discriminator.trainable_variables)

    # --- pieces -------------------------------------------------------------------------------

    def _d(self, images: tf.Tensor) -> tf.Tensor:
        """D's scores for [B, H, W, 3] images in [0, 1] (the source's image offset removed first)."""
        gray = rgb_to_gray(images - tf.constant(self.forms.image_offset))
        return precision.as_float32(self.discriminator(gray, training=True))

    def _swaps(self, n: tf.Tensor) -> tf.Tensor:
        """[n] in {0, 1}: 1 = show D the DSLR image (train_model.py:163). Stateless, keyed by the
        step and replica, so a resumed run draws the same swaps."""
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        seed = tf.stack([tf.constant(self.seed, tf.int64) * 1009 + replica, self.d_optimizer.iterations])
        return tf.cast(tf.random.stateless_uniform([n], seed=seed) < 0.5, tf.float32)

    def discriminator_terms(self, real: tf.Tensor, fake: tf.Tensor,
                            swaps: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """(d_loss, d_accuracy) of D on DSLR `real` and generated (or phone) `fake` images, both
        [B, H, W, 3] in [0, 1]. swaps ('softmax-swaps' only): [B] in {0, 1}, 1 = D sees the DSLR
        image of that example, the enhanced one otherwise; None: drawn by `_swaps`."""
        if self.forms.texture == "softmax-swaps":
            s = self._swaps(tf.shape(real)[0]) if swaps is None else tf.cast(swaps, tf.float32)
            s4 = tf.reshape(s, [-1, 1, 1, 1])
            p = self._d(fake * (1.0 - s4) + real * s4)  # train_model.py:55 (gray is linear)
            return L.official_discriminator_loss(p, s), L.official_accuracy(p, s)
        real_logits, fake_logits = tf.split(self._d(tf.concat([real, fake], 0)), 2)
        loss = {"sigmoid-sum": L.paper_discriminator_loss, "sigmoid-mean": L.mean_discriminator_loss}.get(
            self.forms.texture, L.rebalanced_discriminator_loss)(real_logits, fake_logits)
        return loss, L.logit_accuracy(real_logits, fake_logits)

    def generator_terms(self, phone: tf.Tensor, dslr: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """The generator step's forward pass on [B, H, W, 3] images in [0, 1]: ({raw term
        `<t>_loss`, weighted `w_<t>_loss`, `g_loss`, and for d_batch 'same' also `d_loss`,
        `d_accuracy` on the same D call}, enhanced images)."""
        w, f = self.loss_weighting, self.forms
        enhanced = precision.as_float32(self.generator(phone, training=True))
        target_features = tf.stop_gradient(self._content(dslr))
        out = {
            "content_loss": L.content_loss(self._content(enhanced), target_features),
            "color_loss": L.color_loss(enhanced, dslr, self.kernel, f.color),
            "tv_loss": L.tv_loss(enhanced, f.tv),
        }
        if f.texture == "softmax-swaps":  # D sees only enhanced images in the G step (:155)
            out["texture_loss"] = L.official_texture_loss(self._d(enhanced))
        else:
            real_logits, fake_logits = tf.split(self._d(tf.concat([dslr, enhanced], 0)), 2)
            if f.texture == "sigmoid-sum":
                out["texture_loss"] = L.paper_texture_loss(fake_logits)
                out["d_loss"] = L.paper_discriminator_loss(real_logits, fake_logits)
            elif f.texture == "sigmoid-mean":
                out["texture_loss"] = L.mean_texture_loss(fake_logits)
                out["d_loss"] = L.mean_discriminator_loss(real_logits, fake_logits)
            else:
                out["texture_loss"] = L.rebalanced_texture_loss(real_logits, fake_logits)
                out["d_loss"] = L.rebalanced_discriminator_loss(real_logits, fake_logits)
            out["d_accuracy"] = L.logit_accuracy(real_logits, fake_logits)
        for t in TERMS:
            out[f"w_{t}_loss"] = w[t] * out[f"{t}_loss"]
        out["g_loss"] = tf.add_n([out[f"w_{t}_loss"] for t in TERMS])
        return out, enhanced

    def _content(self, images: tf.Tensor) -> tf.Tensor:
        """Content features (VGG relu5_4 or pixels), compared in float32 under every policy."""
        return precision.as_float32(self.content(images, training=False))

    def _apply(self, optimizer, tape, loss, variables) -> None:
        apply_loss(optimizer, tape, loss, variables)

    # --- steps --------------------------------------------------------------------------------

    def _joint_step(self, phone, dslr, phone_d, dslr_d, per_replica):
        same = self.forms.d_batch == "same"
        g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            out, _ = self.generator_terms(phone, dslr)
            g_total = out["g_loss"] * per_replica
            d_total = out["d_loss"] * per_replica if same else None
        self._apply(self.g_optimizer, tape, g_total, g_vars)
        if same:
            # Gradients only for D's variables: G's output counts as fixed, as the source's fed-back batch.
            self._apply(self.d_optimizer, tape, d_total, d_vars)
        del tape
        if not same:  # after G's update, on a new batch (train_model.py:160-169)
            enhanced_d = tf.stop_gradient(precision.as_float32(self.generator(phone_d, training=True)))
            with tf.GradientTape() as tape:
                out["d_loss"], out["d_accuracy"] = self.discriminator_terms(dslr_d, enhanced_d)
                d_total = out["d_loss"] * per_replica
            self._apply(self.d_optimizer, tape, d_total, d_vars)
        return out

    def _pretrain_step(self, phone, dslr, per_replica):
        """D alone, phone photos as the fakes (rebalanced DPED.py:189-191)."""
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            d_loss, d_accuracy = self.discriminator_terms(dslr, phone)
            d_total = d_loss * per_replica
        self._apply(self.d_optimizer, tape, d_total, d_vars)
        return {"d_loss": d_loss, "d_accuracy": d_accuracy}

    def train_step(self, data):
        phone, dslr = unpack_batch(data)
        if self.augment:
            phone, dslr = random_dihedral(phone, dslr)
        phone_d, dslr_d = phone, dslr
        if self.forms.d_batch == "next":  # the pipeline draws batches_per_step = 2 batches per step
            n = tf.shape(phone)[0]
            half = tf.maximum(n // 2, 1)
            phone, dslr, phone_d, dslr_d = phone[:half], dslr[:half], phone_d[n - half:], dslr_d[n - half:]
        # Gradients are summed over replicas, so each replica's loss is divided by their number.
        per_replica = 1.0 / tf.distribute.get_strategy().num_replicas_in_sync
        # A Python branch, fixed when the step is traced (see _sync_phase): a tf.cond around
        # apply_gradients cannot cross the replicas' synchronisation under MirroredStrategy.
        if self._pretraining:
            out = self._pretrain_step(phone, dslr, per_replica)
        else:
            out = self._joint_step(phone, dslr, phone_d, dslr_d, per_replica)
            self.update_generator_average()
        for name, value in out.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in self.LOSS_NAMES}

    # --- discriminator pre-training: two traced steps, switched between steps -------------------

    def _sync_phase(self) -> None:
        """Retrace the train step when D's pre-training ends (or a restored run is past it)."""
        if not self.pretrain_d_steps:
            return
        pretraining = int(self.d_optimizer.iterations.numpy()) < self.pretrain_d_steps
        if pretraining != self._pretraining:
            self._pretraining = pretraining
            self.train_function = self.make_train_function(force=True)  # fit calls it afresh each step

    def fit(self, *args, **kwargs):
        """keras.Model.fit, plus the callback that ends D's pre-training (when the recipe has one)."""
        if self.pretrain_d_steps:
            if len(args) > 5:
                raise TypeError("DPED.fit: pass callbacks by keyword")
            kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [_PretrainingSwitch()]
        return super().fit(*args, **kwargs)


class _PretrainingSwitch(keras.callbacks.Callback):
    """Calls DPED._sync_phase after BackupAndRestore has restored the step, and after each batch."""

    def on_train_begin(self, logs=None):
        self.model._sync_phase()

    def on_train_batch_end(self, batch, logs=None):
        if self.model._pretraining:
            self.model._sync_phase()


def create_model(train_cfg, patch_size: int = DEFAULT_PATCH_SIZE) -> DPED:
    """Built and compiled DPED from a TrainConfig: the recipe (train.recipe, with the config's
    overrides), content, filters, global_skip, augment, jit_compile, precision, seed. Call inside
    strategy.scope() when distributing. patch_size: side of the square training patches
    (DataConfig.patch_size); fixes D's dense size. The networks are built under train.precision's
    Keras policy (trainer/precision.py); the optimizers get loss scaling for mixed_float16.
    Raises recipes.RecipeError, precision.PrecisionError, ValueError."""
    recipe, _ = recipes.resolve(train_cfg)
    options = recipe.options
    with precision.policy(train_cfg.precision):
        model = _build(train_cfg, recipe, options, patch_size)
    epsilon = options.get("adam_epsilon", 1e-7)

    def adam() -> keras.optimizers.Optimizer:
        inner = keras.optimizers.Adam(recipe.learning_rate, beta_1=recipe.adam_beta_1, epsilon=epsilon)
        return precision.optimizer(inner, train_cfg.precision)

    model.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=train_cfg.jit_compile)
    return model


def _build(train_cfg, recipe: recipes.Recipe, options: dict, patch_size: int) -> DPED:
    return DPED(
        generator=generator_for(options["generator"], train_cfg.filters, recipe.head,
                                global_skip=train_cfg.global_skip),
        discriminator=build_discriminator(patch_size, options["discriminator"]),
        content=content_model(train_cfg.content, train_cfg.vgg_weights, DPED_LAYER),
        loss_weights=recipe.loss_weights,
        forms=L.LossForms.from_options(options),
        augment=recipe.augment and train_cfg.augment,
        pretrain_d_steps=options.get("pretrain_d_steps", 0),
        seed=train_cfg.seed,
        ema_decay=recipe.ema_decay,
        name="dped",
    )
