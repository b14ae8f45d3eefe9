import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr import config as config_lib
from phone2dslr.config import TrainConfig
from tests.trainer.conftest import pair_batch
from phone2dslr.trainer import dped, dped_losses, metrics, recipes, vgg
from phone2dslr.trainer.dped_networks import generator_for
from phone2dslr.trainer.instance_norm import InstanceNormalization


def _cfg(**kw):
    return TrainConfig(**{"model": "dped", "content": "pixel", "filters": 8, "recipe": "rebalanced",
                          "pretrain_d_steps": 0, **kw})


def _layers(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


@pytest.mark.parametrize("form,head", [("plain", "conv1x1"), ("plain", "tanh"), ("official", "tanh"),
                                       ("paper", "tanh"), ("rebalanced", "conv1x1"), ("official", "conv1x1")])
def test_generators_take_any_size(form, head):
    g = generator_for(form, 8, head)
    assert g.input_shape == (None, None, None, 3)
    for shape in ((1, 20, 28, 3), (2, 32, 32, 3)):
        y = g(tf.random.uniform(shape))
        assert y.shape == shape
    if head == "tanh":
        assert -0.08 - 1e-6 <= float(tf.reduce_min(y)) and float(tf.reduce_max(y)) <= 1.08 + 1e-6
    assert g.layers[-1].name == "enhanced"
    with pytest.raises(ValueError, match="head"):
        generator_for(form, 8, "sigmoid")


def test_each_generator_has_its_sources_normalization_and_init():
    official, paper = generator_for("official", 8, "tanh"), generator_for("paper", 8, "tanh")
    rebalanced, plain = generator_for("rebalanced", 8, "conv1x1"), generator_for("plain", 8, "conv1x1")
    assert len(_layers(official, InstanceNormalization)) == 8  # models.py:14-41
    assert [layer.name for layer in _layers(official, InstanceNormalization)] == [f"norm{i}" for i in range(2, 10)]
    assert len(_layers(paper, keras.layers.BatchNormalization)) == 8
    for g in (rebalanced, plain):
        assert not _layers(g, InstanceNormalization) and not _layers(g, keras.layers.BatchNormalization)
    # rebalanced: three 3x3 convs after the blocks, a 1x1 head, no 9x9 output conv (DPED.py:84-90)
    assert [n for n in ("conv_post3", "conv_out") if n in {layer.name for layer in rebalanced.layers}] == ["conv_post3"]
    assert rebalanced.get_layer("enhanced").kernel_size == (1, 1)
    # official init: truncated normal 0.01 (cut at 2 stddev), bias 0.01, a fresh draw per layer
    k2, k3 = official.get_layer("conv2").kernel.numpy(), official.get_layer("conv3").kernel.numpy()
    assert np.abs(k2).max() <= 0.02 + 1e-7 and 0.007 < k2.std() < 0.011 and not np.allclose(k2, k3)
    np.testing.assert_array_equal(official.get_layer("conv2").bias.numpy(), np.float32(0.01))


@pytest.mark.parametrize("form,out", [("official", 2), ("paper", 1), ("rebalanced", 1)])
def test_discriminator_dense_size_follows_input_size(form, out):
    for size, flat in ((32, 2 * 2 * 128), (48, 3 * 3 * 128)):
        d = dped.build_discriminator(size, form)
        y = d(tf.random.uniform([3, size, size, 1]), training=True)
        assert y.shape == (3, out)
        assert d.get_layer("fc").kernel.shape == (flat, 1024)
    if form == "official":  # a 2-way softmax (models.py:80)
        np.testing.assert_allclose(tf.reduce_sum(y, 1), 1.0, rtol=1e-6)
        assert len(_layers(d, InstanceNormalization)) == 4


def test_config_recipe_names_equal_the_registry():
    for model in ("dped", "wespe"):
        assert sorted(config_lib.RECIPES[model]) == recipes.names(model)
    assert recipes.get("dped").name == "official-code"


@pytest.mark.parametrize("name", ["official-code", "paper", "rebalanced"])
def test_each_dped_recipe_is_complete(name):
    recipe = recipes.get("dped", name)
    assert set(recipe.loss_weights) == set(dped.TERMS)
    forms = dped_losses.LossForms.from_options(recipe.options)  # raises on a form it does not know
    assert forms.kernel().shape == (recipe.options["blur_size"],) * 2
    for key in ("generator", "discriminator", "adam_epsilon", "iterations"):
        assert key in recipe.options
    assert recipe.source and recipe.deviations
    assert recipe.batches_per_step == (2 if name == "official-code" else 1)


def test_recipes_resolve_and_explicit_settings_override():
    assert recipes.get("dped", "paper").loss_weights == {"content": 1.0, "color": 0.1, "texture": 0.4, "tv": 400.0}
    recipe, overrides = recipes.resolve(_cfg(recipe="paper", head="conv1x1", loss_weights={"tv": 0.5, "color": 2}))
    assert recipe.loss_weights == {"content": 1.0, "color": 2.0, "texture": 0.4, "tv": 0.5}
    assert overrides == {"loss_weights": recipe.loss_weights, "head": "conv1x1"}
    with pytest.raises(ValueError, match="unknown term.*colour"):
        recipes.resolve(_cfg(recipe="paper", loss_weights={"colour": 1.0}))
    with pytest.raises(ValueError, match="not a dped recipe"):
        recipes.get("dped", "best")
    with pytest.raises(ValueError, match="does not pre-train"):
        recipes.resolve(_cfg(recipe="paper", pretrain_d_steps=5))
    assert recipes.resolve(_cfg(pretrain_d_steps=-1, train_steps=20000))[0].options["pretrain_d_steps"] == 10000  # DPED.py:189
    with pytest.raises(ValueError, match="leaves no generator steps"):  # 200 steps, all pre-training
        recipes.resolve(_cfg(pretrain_d_steps=-1, train_steps=200))
    with pytest.raises(ValueError, match="content must be >= 0"):
        recipes.resolve(_cfg(loss_weights={"content": -1.0}))
    recipe, overrides = recipes.resolve(_cfg(pretrain_d_steps=7))
    assert recipe.options["pretrain_d_steps"] == 7 and overrides == {"pretrain_d_steps": 7}
    model = dped.create_model(_cfg(recipe="official-code", loss_weights={"texture": 0.25}), patch_size=32)
    assert model.loss_weighting == {"content": 10.0, "color": 0.5, "texture": 0.25, "tv": 2000.0}
    assert model.g_optimizer.epsilon == model.d_optimizer.epsilon == 1e-8  # TF1 AdamOptimizer


def test_augmentation_follows_the_recipe_and_can_be_turned_off():
    assert not dped.create_model(_cfg(recipe="official-code"), patch_size=32).augment  # train_model.py: none
    assert dped.create_model(_cfg(), patch_size=32).augment  # rebalanced utils.py:64-76
    assert not dped.create_model(_cfg(augment=False), patch_size=32).augment


@pytest.mark.parametrize("name", ["official-code", "paper", "rebalanced"])
def test_training_steps_lower_the_generator_loss_and_log_every_weighted_term(name, seeded):
    # learning rates for 12 CPU steps; the adversarial weight small: it alone need not fall so soon
    weights = {"texture": 0.01 * recipes.get("dped", name).loss_weights["texture"]}
    model = dped.create_model(_cfg(recipe=name, learning_rate=2e-3, loss_weights=weights), patch_size=32)
    data = tf.data.Dataset.from_tensors(pair_batch(32, batch=4)).repeat()
    history = model.fit(data, steps_per_epoch=1, epochs=12, verbose=0).history  # one step per epoch
    assert set(history) == set(dped.DPED.LOSS_NAMES)
    for term in dped.TERMS:
        np.testing.assert_allclose(history[f"w_{term}_loss"], np.multiply(history[f"{term}_loss"],
                                   model.loss_weighting[term]), rtol=1e-5)
    total = np.sum([history[f"w_{t}_loss"] for t in dped.TERMS], axis=0)
    np.testing.assert_allclose(history["g_loss"], total, rtol=1e-5)
    g, content = history["g_loss"], history["content_loss"]
    assert np.mean(g[-3:]) < 0.7 * g[0], g
    assert np.mean(content[-3:]) < 0.7 * content[0], content
    assert all(np.isfinite(history["d_loss"]))
    assert int(model.g_optimizer.iterations) == int(model.d_optimizer.iterations) == 12


def test_discriminator_pretraining_trains_only_d_first(seeded):
    model = dped.create_model(_cfg(pretrain_d_steps=2), patch_size=32)
    data = tf.data.Dataset.from_tensors(pair_batch(32)).repeat()
    before = [w.copy() for w in model.generator.get_weights()]
    d_before = [w.copy() for w in model.discriminator.get_weights()]
    history = model.fit(data, steps_per_epoch=2, epochs=1, verbose=0).history
    assert int(model.g_optimizer.iterations) == 0 and int(model.d_optimizer.iterations) == 2
    assert all(np.array_equal(a, b) for a, b in zip(before, model.generator.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(d_before, model.discriminator.get_weights()))
    assert history["g_loss"] == [0.0] and np.isfinite(history["d_loss"]).all()
    history = model.fit(data, steps_per_epoch=1, epochs=1, verbose=0).history
    assert int(model.g_optimizer.iterations) == 1 and int(model.d_optimizer.iterations) == 3
    assert history["g_loss"][0] > 0


def test_official_step_splits_the_batch_and_repeats_its_swaps():
    model = dped.create_model(_cfg(recipe="official-code"), patch_size=32)
    model.d_optimizer.iterations.assign(5)
    a, b = model._swaps(tf.constant(64)).numpy(), model._swaps(tf.constant(64)).numpy()
    np.testing.assert_array_equal(a, b)  # keyed by the step: a resumed run draws the same
    assert 0 < a.mean() < 1 and set(np.unique(a)) <= {0.0, 1.0}
    model.d_optimizer.iterations.assign(6)
    assert not np.array_equal(a, model._swaps(tf.constant(64)).numpy())


def test_evaluate_reports_output_and_input_quality_and_call_is_the_generator(seeded):
    model = dped.create_model(_cfg(), patch_size=32)
    batch = pair_batch(32)
    logs = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    assert set(logs) == set(dped.DPED.EVAL_NAMES)
    np.testing.assert_allclose(logs["psnr_input"], np.mean(metrics.psnr(batch["phone"], batch["dslr"])), rtol=1e-5)
    np.testing.assert_allclose(model(batch), model.generator(batch["phone"]), rtol=1e-6)
    assert model.generator.input_shape == (None, None, None, 3)


def test_checkpoint_round_trip_restores_networks_and_optimizers(tmp_path, seeded):
    cfg = _cfg(recipe="paper")  # batch norm in G and D: moving statistics are restored too
    model = dped.create_model(cfg, patch_size=32)
    batch = pair_batch(32)
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=2, verbose=0)
    model.save_weights(str(tmp_path / "ckpt"))
    restored = dped.create_model(cfg, patch_size=32)
    restored.load_weights(str(tmp_path / "ckpt"))
    np.testing.assert_allclose(restored.generator(batch["phone"]), model.generator(batch["phone"]), rtol=1e-6)
    np.testing.assert_allclose(restored.discriminator.get_layer("norm2").moving_mean,
                               model.discriminator.get_layer("norm2").moving_mean)
    assert int(restored.g_optimizer.iterations) == int(restored.d_optimizer.iterations) == 2


def test_vgg_content_is_wired_from_the_config(tmp_path):
    keras.applications.VGG19(include_top=False, weights=None).save_weights(str(tmp_path / "vgg.h5"))
    model = dped.create_model(_cfg(content="vgg19", vgg_weights=str(tmp_path / "vgg.h5")), patch_size=32)
    assert model.content.output_shape == (None, None, None, 512)  # block5_conv4
    assert model.content.trainable_weights == []
    assert all("vgg" not in v.name and "block" not in v.name for v in model.trainable_variables)
    with pytest.raises(vgg.ContentWeightsError, match="not found"):
        dped.create_model(_cfg(content="vgg19", vgg_weights=str(tmp_path / "nope.h5")), patch_size=32)


def test_discriminator_pretraining_under_mirrored_strategy(seeded):
    """The phase is a traced Python branch, switched between steps: no apply_gradients inside a
    tf.cond, which MirroredStrategy cannot synchronise."""
    from phone2dslr.trainer import distribute

    with distribute.make_strategy("mirrored").scope():
        model = dped.create_model(_cfg(pretrain_d_steps=1, filters=4), patch_size=32)
    history = model.fit(tf.data.Dataset.from_tensors(pair_batch(32)).repeat(), steps_per_epoch=3, verbose=0).history
    assert int(model.g_optimizer.iterations.numpy()) == 2 and int(model.d_optimizer.iterations.numpy()) == 3
    assert np.isfinite(history["g_loss"]).all() and history["g_loss"][0] > 0
