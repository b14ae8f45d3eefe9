"""Streamed instance norm (export/streamed_norm.py, export/stream_plan.py): each layer once, exact stats.

Small models with random weights and random normalization affines (so that the statistics matter),
at awkward sizes: bands thinner than the halo, sizes that are not a multiple of the band, one row.
"""
import tracemalloc
import weakref

import numpy as np
import pytest
import tf_keras as keras

from phone2dslr.export import official_dped, stream_plan, stream_spec, streamed_norm
from phone2dslr.export.tiles import NotTileableError
from phone2dslr.trainer.blocks import receptive_field
from phone2dslr.trainer.dped_networks import build_generator
from phone2dslr.trainer.instance_norm import InstanceNormalization


def _randomize_norms(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, InstanceNormalization):
            c = layer.shift.shape[0]
            layer.set_weights([rng.normal(0, 0.3, c).astype("f"), rng.normal(1, 0.3, c).astype("f")])
    return model


@pytest.fixture(scope="module")
def official():
    keras.utils.set_random_seed(2)
    return _randomize_norms(official_dped.build_generator(filters=8), 2)


@pytest.fixture(scope="module")
def own():
    """The project's generator with instance norm, 2 blocks, and the global skip: the photo is read
    again in the last stage."""
    keras.utils.set_random_seed(5)
    model = build_generator(filters=6, num_blocks=2, norm="instance", global_skip=True)
    head = model.get_layer("correction")
    head.set_weights([np.random.default_rng(5).normal(0, 0.2, head.kernel.shape).astype("f"), head.bias.numpy()])
    return _randomize_norms(model, 5)


def _image(h, w, seed=0):
    return np.random.default_rng(seed).random((1, h, w, 3)).astype(np.float32)


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2))


def test_plan_of_the_official_generator(official):
    p = stream_plan.plan(official)
    assert len(p.stages) == 9  # eight normalizations: nine sweeps
    assert [s.radius for s in p.stages] == [5, 1, 1, 1, 1, 1, 1, 1, 6]  # 9x9 + 3x3; 3x3; 3x3+3x3+9x9
    assert [len(s.stores) for s in p.stages] == [2, 1, 2, 1, 2, 1, 2, 1, 0]  # skip + normalization input
    assert [n.layer.name for s in p.stages for n in s.stats] == [f"norm{i}" for i in range(2, 10)]


@pytest.mark.parametrize("size,band", [((37, 53), 1), ((37, 53), 4), ((37, 53), 10), ((37, 53), 37),
                                       ((1, 40), 1), ((23, 1), 7)])
def test_streamed_equals_whole_image(official, size, band):
    x = _image(*size, seed=band)
    whole = official(x).numpy()
    calls = []
    out = streamed_norm.streamed_predict(official, x, band=band, on_tile=lambda: calls.append(1))
    np.testing.assert_allclose(out, whole, atol=1e-5, rtol=0)
    assert len(calls) == streamed_norm.streamed_count(official, size[0], size[1], band)


def test_bands_thinned_to_the_transfer_limit(official, monkeypatch):
    """Windows above TRANSFER_BYTES are thinned per stage (here to a few rows); still exact."""
    monkeypatch.setattr(stream_spec, "TRANSFER_BYTES", 20 * 53 * 8 * 4)
    p = stream_plan.plan(official)
    assert [stream_spec.stage_band(p.spec(), s, 53, 100) for s in p.spec().stages] == [100] + [18] * 7 + [8]
    x = _image(37, 53, seed=12)
    calls = []
    out = streamed_norm.streamed_predict(official, x, band=100, on_tile=lambda: calls.append(1))
    np.testing.assert_allclose(out, official(x).numpy(), atol=1e-5, rtol=0)
    assert len(calls) == streamed_norm.streamed_count(official, 37, 53, 100) == 1 + 7 * 3 + 5


def test_own_generator_with_global_skip(own):
    x = _image(29, 41, seed=7)
    whole = own(x).numpy()
    assert np.abs(whole - x).max() > 0.05  # the correction is not nothing
    np.testing.assert_allclose(streamed_norm.streamed_predict(own, x, band=6), whole, atol=1e-5, rtol=0)
    assert len(stream_plan.plan(own).stages) == 5


def test_statistics_per_band_would_fail(official, monkeypatch):
    """The equality above needs whole-image statistics: per-band ones (tiles normalized by their own
    statistics, or moments that forget earlier bands) are far off."""
    x = _image(40, 48, seed=3)
    whole = official(x).numpy()
    halves = np.concatenate([official(x[:, :20]).numpy(), official(x[:, 20:]).numpy()], axis=1)
    assert np.abs(halves - whole).max() > 1e-2

    original = stream_spec._Moments.add

    def last_band_only(self, width, means, variances):
        self.count, self.mean, self.m2 = 0, np.zeros_like(self.mean), np.zeros_like(self.m2)
        original(self, width, means, variances)

    monkeypatch.setattr(stream_spec._Moments, "add", last_band_only)
    forgetful = streamed_norm.streamed_predict(official, x, band=16)
    assert np.abs(forgetful - whole).max() > 1e-2


def test_float16_storage_within_55_db(official, own):
    for model, x in ((official, _image(45, 61, seed=4)), (own, _image(33, 30, seed=8))):
        whole = model(x).numpy()
        half = streamed_norm.streamed_predict(model, x, band=9, storage=np.float16)
        assert half.dtype == np.float32 and _psnr(half, whole) > 55


def test_integer_samples_in_and_out(official):
    pixels = np.random.default_rng(4).integers(0, 256, (31, 45, 3), dtype=np.uint8)
    as_float = official(pixels[np.newaxis].astype(np.float32) / 255.0).numpy()
    expected = np.round(np.clip(as_float, 0.0, 1.0) * 255.0).astype(np.uint8)
    samples = streamed_norm.streamed_predict(official, pixels, band=8, dtype=np.uint8)
    assert samples.dtype == np.uint8 and samples.shape == (1, 31, 45, 3)
    assert np.abs(samples.astype(int) - expected).max() <= 1  # a float32 rounding may cross a .5 level


def test_memory_is_two_whole_image_arrays(official, monkeypatch):
    """Between stages only the skip and one normalization input are kept (8 channels here), on their
    own mmaps; other NumPy memory is the output and a few band windows (16 rows + halo)."""
    x = _image(160, 96, seed=1)
    streamed_norm.streamed_predict(official, x, band=16)  # traced before measuring
    made, alive, original = [], [], stream_spec._whole_image_array

    def counted(shape, dtype):
        array = original(shape, dtype)
        made.append(weakref.ref(array))
        alive.append(sum(r() is not None for r in made))
        return array

    monkeypatch.setattr(stream_spec, "_whole_image_array", counted)
    tracemalloc.start()
    streamed_norm.streamed_predict(official, x, band=16)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(made) == 2 and max(alive) == 2  # then every stage reuses them in place
    output, window = 160 * 96 * 3 * 4, (16 + 2 * 6) * 96 * 8 * 4
    assert peak < output + 4 * window  # less than one more whole-image array (491 kB) on the heap


def test_what_cannot_be_streamed():
    inputs = keras.Input((None, None, 3))
    strided = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    with pytest.raises(NotTileableError, match="stride-1"):
        stream_plan.plan(keras.Model(inputs, InstanceNormalization()(strided)))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(InstanceNormalization()(inputs))
    with pytest.raises(NotTileableError, match="GlobalAveragePooling2D"):
        stream_plan.plan(keras.Model(inputs, keras.layers.Add()([inputs, pooled])))
    fixed = keras.Input((8, 8, 3))
    for make in (lambda: keras.layers.Softmax(axis=1), lambda: keras.layers.LayerNormalization(axis=[1, 2, 3])):
        with pytest.raises(NotTileableError, match="pointwise"):  # per-pixel in name only (helper break-test)
            stream_plan.plan(keras.Model(fixed, make()(InstanceNormalization()(fixed))))
        with pytest.raises(ValueError, match="works over axis"):  # nor tiled as if it were
            receptive_field(keras.Model(fixed, make()(fixed)))
    with pytest.raises(ValueError, match="storage"):
        streamed_norm.streamed_predict(keras.Model(inputs, InstanceNormalization()(inputs)), _image(4, 4),
                                       band=2, storage=np.float64)


def test_normalizing_the_photo_itself():
    """A normalization of the model input: stage 0 only accumulates the photo's statistics."""
    keras.utils.set_random_seed(9)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(3, 3, padding="same")(InstanceNormalization(name="n0")(inputs))
    model = _randomize_norms(keras.Model(inputs, keras.layers.Add()([x, inputs])), 9)
    x = _image(19, 22, seed=2)
    np.testing.assert_allclose(streamed_norm.streamed_predict(model, x, band=5), model(x).numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("band", [1, 3, 50])
def test_in_place_stages_with_a_halo_wider_than_the_band(band):
    """Stages whose output overwrites their input's array while bands are thinner than the halo
    (5x5 and dilated convs between normalizations: radius 2 + 4 in one stage)."""
    keras.utils.set_random_seed(11)
    inputs = keras.Input((None, None, 3))
    skip = keras.layers.Conv2D(5, 3, padding="same", activation="relu")(inputs)
    y = InstanceNormalization()(keras.layers.Conv2D(5, 3, padding="same")(skip))
    y = keras.layers.Conv2D(5, 5, padding="same", activation="relu")(y)
    y = keras.layers.Conv2D(5, 3, padding="same", dilation_rate=4)(y)
    y = keras.layers.Add()([skip, keras.layers.ReLU()(InstanceNormalization()(y))])
    model = _randomize_norms(keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(y)), 11)
    assert [s.radius for s in stream_plan.plan(model).stages] == [2, 6, 1]
    x = _image(27, 19, seed=band)
    out = streamed_norm.streamed_predict(model, x, band=band)
    np.testing.assert_allclose(out, model(x).numpy(), atol=1e-5, rtol=0)
