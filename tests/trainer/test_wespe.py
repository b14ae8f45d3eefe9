import numpy as np
import pytest
import tensorflow as tf

from phone2dslr.config import TrainConfig
from tests.trainer.conftest import pair_batch
from phone2dslr.trainer import wespe


def _cfg(**kw):
    return TrainConfig(**{"model": "wespe", "content": "pixel", "filters": 8, **kw})


def test_config_maps_train_config_and_overrides_weights():
    c = wespe.WESPEConfig.from_train_config(_cfg(learning_rate=2e-4, loss_weights={"tv": 1.0}))
    assert (c.g_filters, c.f_filters, c.learning_rate, c.beta_1) == (8, 4, 2e-4, 0.5)
    assert c.loss_weights == {"content": 1.0, "color": 5e-3, "texture": 5e-3, "tv": 1.0}
    assert wespe.WESPEConfig().loss_weights["tv"] == 10.0  # defaults untouched
    with pytest.raises(ValueError, match="unknown term"):
        wespe.WESPEConfig.from_train_config(_cfg(loss_weights={"cycle": 1.0}))


def test_networks_take_any_size_and_discriminators_output_patch_maps():
    model = wespe.create_model(_cfg())
    assert model.generator.count_params() > model.inverse.count_params()
    for shape in ((1, 24, 40), (2, 32, 32)):
        x = tf.random.uniform(shape + (3,))
        assert model.generator(x).shape == x.shape and model.inverse(x).shape == x.shape
        assert model.color_discriminator(x).shape == (shape[0], shape[1] // 8, shape[2] // 8, 1)
        assert model.texture_discriminator(x[..., :1]).shape == (shape[0], shape[1] // 8, shape[2] // 8, 1)
    assert model.generator.input_shape == (None, None, None, 3)


def test_training_steps_lower_the_generator_loss_on_unpaired_batches(seeded):
    model = wespe.create_model(_cfg(learning_rate=1e-3))
    batch = pair_batch(32, batch=2)
    batch["dslr"] = np.concatenate([batch["dslr"], batch["dslr"][:1, ::-1]])  # unpaired: 2 phone, 3 DSLR
    history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=1, epochs=15,
                        verbose=0).history
    assert set(history) == set(wespe.WESPE.LOSS_NAMES)
    g = history["g_loss"]
    assert np.mean(g[-3:]) < 0.8 * g[0], g
    assert all(np.isfinite(history["d_color_loss"])) and all(np.isfinite(history["d_texture_loss"]))
    logs = model.evaluate(tf.data.Dataset.from_tensors(pair_batch(32)), verbose=0, return_dict=True)
    assert set(logs) == {"psnr", "ssim", "psnr_input", "ssim_input"}
