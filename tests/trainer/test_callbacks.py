import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer.callbacks import NaNGuard, TrainingDivergedError


def _model_and_data(nan_from: int):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 2), np.float32)
    x[nan_from:] = np.nan  # batches of 2: batch nan_from // 2 is the first bad one
    return model, tf.data.Dataset.from_tensor_slices((x, np.ones((8, 1), np.float32))).batch(2)


def test_nan_guard_raises_at_the_first_bad_batch():
    model, data = _model_and_data(nan_from=4)
    guard = NaNGuard()
    with pytest.raises(TrainingDivergedError, match=r"loss = nan at step 3"):
        model.fit(data, epochs=3, verbose=0, callbacks=[guard])
    assert model.stop_training and guard.diverged[:2] == (3, "loss")


def test_nan_guard_can_stop_without_raising():
    model, data = _model_and_data(nan_from=2)
    seen = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    guard = NaNGuard(raise_error=False)
    model.fit(data, epochs=3, verbose=0, callbacks=[guard, counter])
    assert guard.diverged[1] == "loss" and np.isnan(guard.diverged[2])
    assert len(seen) <= 4  # stopped within the first epoch instead of running all 12 batches


def test_nan_guard_ignores_non_loss_entries_and_finite_values():
    guard = NaNGuard()
    guard.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    guard.on_train_batch_end(0, {"g_loss": 1.0, "psnr": float("inf")})
    assert guard.diverged is None
    with pytest.raises(TrainingDivergedError, match="d_color_loss = inf"):
        guard.on_train_batch_end(1, {"g_loss": 1.0, "d_color_loss": float("inf")})
