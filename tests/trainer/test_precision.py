"""Mixed precision (trainer/precision.py): the same losses as float32 within bfloat16's rounding,
loss scaling that gives float32's gradients, and a float32 network for export."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr.config import TrainConfig
from phone2dslr.trainer import models, precision
from phone2dslr.trainer.instance_norm import InstanceNormalization
from tests.trainer.conftest import pair_batch

# bfloat16 keeps 8 bits of mantissa (relative rounding 2^-8 = 0.4% per operation); through a few
# layers of a freshly initialised network the first step's losses were seen within 1% of float32
# (DPED official-code's colour term: 0.2%; WESPE's colour discriminator: 1%). 3% + 0.01 absolute
# (terms near zero) bounds that with a margin and still fails on a wrong cast (a loss on bfloat16
# images, a blur in bfloat16) or a lost term.
RTOL, ATOL = 0.03, 0.01
CASES = [("dped", "demo"), ("dped", "official-code"), ("wespe", "demo")]


def _first_step_losses(model_name: str, recipe: str, policy: str, weights=None):
    """Losses of one train step (the forward pass before the update) and the initial weights."""
    batch = {k: tf.constant(v) for k, v in pair_batch(32, 4).items()}
    keras.utils.set_random_seed(0)
    cfg = TrainConfig(model=model_name, recipe=recipe, content="pixel", filters=8, batch_size=4,
                      augment=False, precision=policy)
    model = models.create_model(cfg, patch_size=32)
    model(batch["phone"][:1])
    if weights is not None:
        model.set_weights(weights)  # the same numbers, whatever the policy's initialisation did
    initial = model.get_weights()
    out = model.make_train_function()(iter(tf.data.Dataset.from_tensors(batch).repeat()))
    return model, {k: float(v) for k, v in out.items()}, initial


@pytest.mark.parametrize("model_name,recipe", CASES)
def test_mixed_bfloat16_losses_match_float32_on_the_same_batch_and_weights(model_name, recipe):
    _, reference, weights = _first_step_losses(model_name, recipe, "float32")
    model, mixed, _ = _first_step_losses(model_name, recipe, "mixed_bfloat16", weights)
    assert precision.is_mixed(model.generator)
    assert model.generator.layers[-1].compute_dtype == "bfloat16"
    assert all(v.dtype == tf.float32 for v in model.generator.weights)  # variables stay float32
    assert set(mixed) == set(reference)
    for name, value in reference.items():
        assert np.isfinite(mixed[name]), name
        assert mixed[name] == pytest.approx(value, rel=RTOL, abs=ATOL), name
    # The step changed the weights (a skipped or zero update would pass the loss check alone).
    assert any(np.abs(a - b).max() > 0 for a, b in zip(model.get_weights(), weights))


def test_mixed_float16_scales_the_loss_and_trains():
    model, losses, weights = _first_step_losses("dped", "demo", "mixed_float16")
    assert isinstance(model.g_optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert isinstance(model.d_optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert all(np.isfinite(v) for v in losses.values())
    moved = [np.abs(a - b).max() for a, b in zip(model.generator.get_weights(), weights)]
    assert max(moved) > 0  # a finite step was applied, not skipped as an overflow


def test_loss_scaled_step_equals_the_plain_step():
    """apply_loss seeds the backward pass with the loss scale and unscales: the update must be
    the plain optimizer's, to float rounding (a missing unscale would be 2^15 times larger)."""
    x = tf.constant(np.random.default_rng(0).normal(size=(8, 5)), tf.float32)
    results = []
    for scaled in (False, True):
        keras.utils.set_random_seed(0)
        layer = keras.layers.Dense(3)
        layer.build((None, 5))
        opt = keras.optimizers.SGD(0.1)
        if scaled:
            opt = keras.mixed_precision.LossScaleOptimizer(opt)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(layer(x) - 1.0))
        precision.apply_loss(opt, tape, loss, layer.trainable_variables)
        results.append([v.numpy() for v in layer.trainable_variables])
    for plain, scaled in zip(*results):
        np.testing.assert_allclose(scaled, plain, rtol=1e-6, atol=1e-7)
    assert precision.optimizer(keras.optimizers.SGD(), "mixed_bfloat16").__class__ is keras.optimizers.SGD


def test_the_exported_generator_is_float32_and_equals_a_float32_build():
    phone = tf.constant(pair_batch(24, 2)["phone"])
    keras.utils.set_random_seed(0)
    cfg = TrainConfig(model="dped", recipe="official-code", content="pixel", filters=8, batch_size=2,
                      precision="mixed_bfloat16")
    mixed = models.create_model(cfg, patch_size=24).generator
    exported = precision.float32_model(mixed)
    assert exported is not mixed and not precision.is_mixed(exported)
    assert precision.float32_model(exported) is exported
    keras.utils.set_random_seed(0)
    reference = models.create_model(TrainConfig(model="dped", recipe="official-code", content="pixel",
                                                filters=8, batch_size=2), patch_size=24).generator
    reference.set_weights(mixed.get_weights())
    np.testing.assert_allclose(exported(phone).numpy(), reference(phone).numpy(), rtol=0, atol=1e-6)
    # and the mixed network itself is only bfloat16-close
    gap = np.abs(tf.cast(mixed(phone), tf.float32).numpy() - reference(phone).numpy()).max()
    assert 0 < gap < 0.1


def test_instance_norm_statistics_are_float32_under_bfloat16():
    x = tf.constant(np.random.default_rng(1).normal(3.0, 2.0, size=(2, 16, 16, 4)), tf.float32)
    with precision.policy("mixed_bfloat16"):
        layer = InstanceNormalization()
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the build
    y = layer(x)
    assert y.dtype == tf.bfloat16 and layer.scale.dtype == tf.float32
    reference = InstanceNormalization()(tf.cast(tf.cast(x, tf.bfloat16), tf.float32))
    # float32 statistics of the bfloat16 input, rounded once to bfloat16 at the output
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), reference.numpy(), rtol=1e-2, atol=2e-2)


def test_unknown_precision_is_one_line():
    with pytest.raises(precision.PrecisionError, match="train.precision 'fp8' is not one of float32"):
        models.create_model(TrainConfig(model="dped", recipe="demo", content="pixel", precision="fp8"))
