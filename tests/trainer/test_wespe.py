import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr.config import RECIPES, TrainConfig
from tests.trainer.conftest import pair_batch
from phone2dslr.trainer import blocks, recipes, wespe


def _cfg(**kw):
    return TrainConfig(**{"model": "wespe", "content": "pixel", "filters": 8, **kw})


def test_recipes_are_registered_under_the_config_names_and_map_onto_the_config():
    assert recipes.names("wespe") == sorted(RECIPES["wespe"])
    paper = wespe.WESPEConfig.from_train_config(_cfg(), patch_size=32)  # the default recipe
    assert (paper.learning_rate, paper.beta_1, paper.cycles, paper.adversarial) == (5e-4, 0.9, 1, "gan-sum")
    assert (paper.g_filters, paper.f_filters, paper.patch_size, paper.augment) == (8, 8, 32, False)
    assert paper.loss_weights == {"content": 1.0, "color": 5e-3, "texture": 5e-3, "tv": 10.0}
    k = wespe.WESPEConfig.from_train_config(_cfg(recipe="wespe-keras", learning_rate=1e-3, loss_weights={"tv": 1}))
    assert (k.learning_rate, k.beta_1, k.content_layer, k.content_loss, k.d_schedule) == (
        1e-3, 0.5, "block2_conv2", "mae", "real-then-fake")
    assert k.loss_weights == {"content": 1.0, "content_b": 1.0, "color": 0.5, "texture": 0.5, "tv": 1.0}
    assert recipes.get("wespe", "wespe-keras").loss_weights["tv"] == 0.5  # the registry is untouched
    with pytest.raises(ValueError, match="unknown term"):
        wespe.WESPEConfig.from_train_config(_cfg(loss_weights={"content_b": 1.0}))  # the paper has one cycle
    with pytest.raises(wespe.WESPEConfigError, match="adversarial 'wgan'"):
        wespe.WESPEConfig(adversarial="wgan")


@pytest.mark.parametrize("recipe", ["paper", "wespe-keras"])
def test_networks_take_any_size_and_f_matches_g(recipe):
    model = wespe.create_model(_cfg(recipe=recipe), patch_size=32)
    assert model.generator.count_params() == model.inverse.count_params()  # both sources: F = G
    for shape in ((1, 24, 40), (2, 32, 32)):
        x = tf.random.uniform(shape + (3,))
        assert model.generator(x).shape == x.shape and model.inverse(x).shape == x.shape
    x = tf.random.uniform((2, 32, 32, 3))
    d_shape = (2, 1) if recipe == "paper" else (2, 2, 2, 1)  # one logit per image | ceil(32 / 16) patches
    assert model.color_discriminator(x).shape == d_shape and model.texture_discriminator(x).shape == d_shape
    assert blocks.receptive_field(model.generator) == (37 if recipe == "paper" else 39)


@pytest.mark.parametrize("recipe, d_steps", [("paper", 1), ("wespe-keras", 2)])
def test_one_step_updates_every_network_once_per_schedule_and_logs_every_term(recipe, d_steps, seeded):
    model = wespe.create_model(_cfg(recipe=recipe), patch_size=32)
    batch = pair_batch(32, batch=2)
    batch["dslr"] = np.concatenate([batch["dslr"], batch["dslr"][:1, ::-1]])  # unpaired: 2 phone, 3 DSLR
    nets = (model.generator, model.inverse, model.color_discriminator, model.texture_discriminator)
    before = [[v.numpy().copy() for v in net.weights] for net in nets]
    history = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0).history
    logs = {k: v[-1] for k, v in history.items()}
    terms = ["content", "color", "texture", "tv"] + (["content_b"] if recipe == "wespe-keras" else [])
    assert set(logs) == {"g_loss", "d_color_loss", "d_texture_loss"} | {f"{t}_{s}" for t in terms
                                                                        for s in ("loss", "weighted")}
    np.testing.assert_allclose(logs["g_loss"], sum(logs[f"{t}_weighted"] for t in terms), rtol=1e-5)
    for net, old in zip(nets, before):
        for v, w in zip(net.weights, old):
            if "_blur" in v.name or "_gray" in v.name:  # the fixed input filters
                assert np.array_equal(v.numpy(), w), v.name
            elif "kernel" in v.name:
                assert not np.array_equal(v.numpy(), w), (net.name, v.name)
    assert int(model.g_optimizer.iterations) == 1 and int(model.d_color_optimizer.iterations) == d_steps


def test_training_reduces_the_cycle_content_loss_and_evaluates(seeded):
    model = wespe.create_model(_cfg(learning_rate=1e-3), patch_size=32)
    batch = pair_batch(32, batch=2)
    history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=1, epochs=12,
                        verbose=0).history
    content = history["content_loss"]
    assert np.mean(content[-3:]) < 0.7 * content[0], content
    assert all(np.isfinite(history["d_color_loss"])) and all(np.isfinite(history["d_texture_loss"]))
    logs = model.evaluate(tf.data.Dataset.from_tensors(pair_batch(32)), verbose=0, return_dict=True)
    assert set(logs) == set(wespe.WESPE.EVAL_NAMES) and 15.0 < logs["psnr_input"] < 40.0, logs  # dB


def test_raw_input_features_skips_only_the_preprocessing():
    inner_in = keras.Input((None, None, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(2, 3, padding="same")(inner_in), name="vgg19_block2_conv2")
    inputs = keras.Input((None, None, 3))
    content = keras.Model(inputs, inner(keras.layers.Lambda(lambda x: x * 255.0 - 100.0,
                                                             name="vgg_preprocess")(inputs)))
    x = tf.random.uniform((1, 8, 8, 3))
    raw = wespe.raw_input_features(content)
    np.testing.assert_allclose(raw(x), inner(x), rtol=1e-6)
    assert not np.allclose(content(x), inner(x)) and not raw.trainable
    pixels = wespe.content_model("pixel")
    assert wespe.raw_input_features(pixels) is pixels


def test_batch_sums_are_not_divided_by_the_replica_count():
    paper = wespe.create_model(_cfg(), patch_size=16)
    keras_recipe = wespe.create_model(_cfg(recipe="wespe-keras"))
    assert paper._scale("color", 4.0) == 1.0 and paper._scale("d", 4.0) == 1.0
    assert paper._scale("content", 4.0) == 0.25 and keras_recipe._scale("color", 4.0) == 0.25


def test_identity_term_is_cyclegans_l1_on_dslr_images(seeded):
    """Zhu et al., CycleGAN (ICCV 2017) Sec. 5.2; their criterionIdt = L1Loss(G(real_B), real_B)."""
    cfg = wespe.WESPEConfig.from_train_config(_cfg(recipe="demo", global_skip=True, filters=4), patch_size=32)
    assert cfg.identity == "mae" and cfg.terms[-1] == "identity" and cfg.loss_weights["identity"] > 0
    model = wespe.build(cfg)
    batch = pair_batch(32, batch=2)
    # Move G off the identity first (it starts as one: zero-initialised correction).
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=3, epochs=1, verbose=0)
    out = model.generator_losses(batch["phone"], batch["dslr"])
    expected = np.mean(np.abs(model.generator(batch["dslr"]).numpy() - batch["dslr"]))
    assert expected > 0
    np.testing.assert_allclose(out["identity_loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(out["identity_weighted"], cfg.loss_weights["identity"] * expected, rtol=1e-5)
    terms = [t for t in cfg.terms]
    np.testing.assert_allclose(out["g_loss"], sum(out[f"{t}_weighted"] for t in terms), rtol=1e-5)
    with pytest.raises(wespe.WESPEConfigError, match="identity"):
        wespe.WESPEConfig(identity="l2")
    with pytest.raises(wespe.WESPEConfigError, match="the terms are"):
        wespe.WESPEConfig(identity="mae")  # loss_weights lack the identity term
