import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr.config import TrainConfig
from tests.trainer.conftest import pair_batch
from phone2dslr.trainer import dped, metrics, vgg


def _cfg(**kw):
    return TrainConfig(**{"model": "dped", "content": "pixel", "filters": 8, "head": "conv1x1", "recipe": "rebalanced", **kw})


@pytest.mark.parametrize("head", ["conv1x1", "tanh"])
def test_generator_takes_any_size(head):
    g = dped.build_generator(8, head)
    assert g.input_shape == (None, None, None, 3)
    for shape in ((1, 20, 28, 3), (2, 32, 32, 3)):
        y = g(tf.random.uniform(shape))
        assert y.shape == shape
    if head == "tanh":
        assert -0.08 - 1e-6 <= float(tf.reduce_min(y)) and float(tf.reduce_max(y)) <= 1.08 + 1e-6
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in g.layers)
    with pytest.raises(ValueError, match="head"):
        dped.build_generator(8, "sigmoid")


def test_discriminator_dense_size_follows_input_size():
    for size, flat in ((32, 2 * 2 * 128), (48, 3 * 3 * 128)):
        d = dped.build_discriminator(size)
        assert d(tf.random.uniform([3, size, size, 1]), training=True).shape == (3, 1)
        assert d.get_layer("fc").kernel.shape == (flat, 1024)


def test_recipes_resolve_and_explicit_weights_override():
    from phone2dslr.trainer import recipes

    assert recipes.get("dped", "paper").loss_weights == {"content": 1.0, "color": 0.1, "texture": 0.4, "tv": 400.0}
    recipe, overrides = recipes.resolve(_cfg(recipe="paper", loss_weights={"tv": 0.5, "color": 2}))
    assert recipe.loss_weights == {"content": 1.0, "color": 2.0, "texture": 0.4, "tv": 0.5}
    assert overrides == {"loss_weights": recipe.loss_weights, "head": "conv1x1"}
    with pytest.raises(ValueError, match="unknown term.*colour"):
        recipes.resolve(_cfg(recipe="paper", loss_weights={"colour": 1.0}))
    with pytest.raises(ValueError, match="not a dped recipe"):
        recipes.get("dped", "best")
    model = dped.create_model(_cfg(recipe="official-code", loss_weights={"texture": 0.25}), patch_size=32)
    assert model.loss_weighting == {"content": 10.0, "color": 0.5, "texture": 0.25, "tv": 2000.0}


def test_training_steps_lower_the_generator_loss(seeded):
    # a small texture weight: the adversarial term alone need not fall over 15 steps
    model = dped.create_model(_cfg(learning_rate=1e-3, loss_weights={"texture": 0.01}), patch_size=32)
    data = tf.data.Dataset.from_tensors(pair_batch(32)).repeat()
    history = model.fit(data, steps_per_epoch=1, epochs=15, verbose=0).history  # one step per epoch
    assert set(history) == set(dped.DPED.LOSS_NAMES)
    g, content = history["g_loss"], history["content_loss"]
    assert np.mean(g[-3:]) < 0.5 * g[0], g
    assert np.mean(content[-3:]) < 0.5 * content[0], content
    assert all(np.isfinite(history["d_loss"]))


def test_evaluate_reports_output_and_input_quality_and_call_is_the_generator(seeded):
    model = dped.create_model(_cfg(), patch_size=32)
    batch = pair_batch(32)
    logs = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    assert set(logs) == {"psnr", "ssim", "psnr_input", "ssim_input"}
    np.testing.assert_allclose(logs["psnr_input"], np.mean(metrics.psnr(batch["phone"], batch["dslr"])), rtol=1e-5)
    out = np.clip(model.generator(batch["phone"]), 0, 1)
    np.testing.assert_allclose(logs["ssim"], np.mean(metrics.ssim(out, batch["dslr"])), rtol=1e-4)
    np.testing.assert_allclose(model(batch), model.generator(batch["phone"]), rtol=1e-6)
    assert model.generator.input_shape == (None, None, None, 3)


def test_checkpoint_round_trip_restores_networks_and_optimizers(tmp_path, seeded):
    cfg = _cfg()
    model = dped.create_model(cfg, patch_size=32)
    batch = pair_batch(32)
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=2, verbose=0)
    model.save_weights(str(tmp_path / "ckpt"))
    restored = dped.create_model(cfg, patch_size=32)
    restored.load_weights(str(tmp_path / "ckpt"))
    np.testing.assert_allclose(restored.generator(batch["phone"]), model.generator(batch["phone"]), rtol=1e-6)
    np.testing.assert_allclose(restored.discriminator.get_layer("bn2").moving_mean,
                               model.discriminator.get_layer("bn2").moving_mean)
    assert int(restored.g_optimizer.iterations) == int(restored.d_optimizer.iterations) == 2


def test_vgg_content_is_wired_from_the_config(tmp_path):
    keras.applications.VGG19(include_top=False, weights=None).save_weights(str(tmp_path / "vgg.h5"))
    model = dped.create_model(_cfg(content="vgg19", vgg_weights=str(tmp_path / "vgg.h5")), patch_size=32)
    assert model.content.output_shape == (None, None, None, 512)  # block5_conv4
    assert model.content.trainable_weights == []
    assert all("vgg" not in v.name and "block" not in v.name for v in model.trainable_variables)
    with pytest.raises(vgg.ContentWeightsError, match="not found"):
        dped.create_model(_cfg(content="vgg19", vgg_weights=str(tmp_path / "nope.h5")), patch_size=32)
