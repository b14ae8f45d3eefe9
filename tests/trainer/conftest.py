"""Shared fixtures for trainer tests. Importing `trainer` first sets TF_USE_LEGACY_KERAS=1."""
import phone2dslr    # noqa: F401  (must precede TensorFlow)

import numpy as np
import pytest
import tf_keras as keras


@pytest.fixture
def seeded():
    keras.utils.set_random_seed(0)
    yield


def pair_batch(size: int = 32, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed tiny batch: a smooth 'DSLR' image and a darker, noisier 'phone' version of it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.5 + 0.4 * np.sin(3 * xx + k) * np.cos(2 * yy - k) for k in range(3)], -1)
    dslr = np.stack([np.roll(base, 3 * i, axis=1) for i in range(batch)]).astype(np.float32)
    phone = np.clip(0.7 * dslr + 0.05 + rng.normal(0, 0.04, dslr.shape), 0, 1).astype(np.float32)
    return {"phone": phone, "dslr": dslr}
