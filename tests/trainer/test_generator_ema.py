"""The generator's exponential moving average: BasicSR's formula, what validation and export use,
checkpoints, and tf.distribute."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr.config import TrainConfig
from phone2dslr.trainer import distribute, dped, gan, recipes, wespe
from tests.trainer.conftest import pair_batch


def _dped(**kw):
    return dped.create_model(TrainConfig(**{"model": "dped", "recipe": "demo", "content": "pixel",
                                            "filters": 4, "global_skip": True, **kw}), patch_size=32)


def _weights(net):
    return [w.numpy().copy() for w in net.weights]


def _one_step(model, batch):
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)


def test_average_follows_basicsr_model_ema_step_by_step(seeded):
    """BasicSR basicsr/models/sr_model.py model_ema: ema = decay * ema + (1 - decay) * w, after
    every generator update, starting from the generator's initial weights."""
    model = _dped()
    decay = recipes.get("dped", "demo").ema_decay
    assert model.ema_decay == decay > 0
    expected = _weights(model.generator)
    np.testing.assert_array_equal(np.concatenate([w.ravel() for w in _weights(model.generator_ema)]),
                                  np.concatenate([w.ravel() for w in expected]))
    batch = pair_batch(32, batch=2)
    for _ in range(3):
        _one_step(model, batch)
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, _weights(model.generator))]
        for got, want in zip(_weights(model.generator_ema), expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    moved = [np.abs(a - b).max() for a, b in zip(_weights(model.generator_ema), _weights(model.generator))]
    assert max(moved) > 0  # the average lags behind the raw weights


def test_validation_scores_and_the_trainer_exports_the_average(seeded):
    model = _dped()
    batch = pair_batch(32, batch=2)
    for _ in range(3):
        _one_step(model, batch)
    assert model.exported_generator is model.generator_ema
    logs = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)

    def psnr(net):
        out = np.clip(net(batch["phone"], training=False).numpy(), 0, 1)
        return float(np.mean(tf.image.psnr(out, batch["dslr"], 1.0)))
    assert logs["psnr"] == pytest.approx(psnr(model.generator_ema), abs=1e-3)
    assert psnr(model.generator_ema) != pytest.approx(psnr(model.generator), abs=1e-5)


def test_checkpoints_carry_the_average_and_published_recipes_keep_none(seeded):
    model = _dped()
    ids = {id(v) for v in model.weights}
    assert all(id(v) in ids for v in model.generator_ema.weights)  # keep_best and the backup save it
    trainable = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in trainable for v in model.generator_ema.weights)  # no optimizer steps it
    for model_name, names in (("dped", ("official-code", "paper", "rebalanced")), ("wespe", ("paper", "wespe-keras"))):
        for name in names:
            assert recipes.get(model_name, name).ema_decay == 0.0  # none of the sources averages
    plain = _dped(recipe="rebalanced", head="conv1x1", pretrain_d_steps=0)
    assert plain.generator_ema is None and plain.exported_generator is plain.generator
    with pytest.raises(ValueError, match="ema_decay"):
        gan.EnhancementGAN(keras.Sequential([keras.layers.Conv2D(3, 1, input_shape=(None, None, 3))]),
                           ema_decay=1.0)


def test_wespe_average_under_mirrored_strategy(seeded):
    """The update goes through assign_moving_average, which runs in a replica context."""
    with distribute.make_strategy("mirrored").scope():
        model = wespe.create_model(TrainConfig(model="wespe", recipe="demo", content="pixel", filters=4,
                                               global_skip=True), patch_size=32)
    decay = model.ema_decay
    assert decay == recipes.get("wespe", "demo").ema_decay > 0
    expected = _weights(model.generator)
    _one_step(model, pair_batch(32, batch=2))
    expected = [decay * e + (1 - decay) * w for e, w in zip(expected, _weights(model.generator))]
    for got, want in zip(_weights(model.generator_ema), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
