"""Tiled inference equals whole-image inference: plain generators, borders, instance norm.

The radius read off exported SavedModel / TFLite graphs is tested with the files in test_enhance.py
and test_official_dped.py (they export anyway; conversion is the slow part).
"""
import numpy as np
import pytest
import tf_keras as keras

from phone2dslr.export import official_dped, tiling
from phone2dslr.trainer import dped


def _image(h, w, seed=0):
    return np.random.default_rng(seed).random((1, h, w, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(1)
    return dped.build_generator(filters=8, head="tanh")


@pytest.mark.parametrize("length, tile, radius", [
    (75, 48, 18), (101, 48, 18), (49, 48, 18), (48, 48, 18), (20, 48, 18), (1, 8, 3), (200, 7, 3), (37, 37, 18),
    (1536, 512, 18), (2048, 512, 18), (477, 40, 19), (1000, 0, 18)])
def test_spans_partition_the_axis_and_reach_the_border(length, tile, radius):
    spans = tiling.spans(length, tile, radius)
    assert spans[0].keep_start == 0 and spans[-1].keep_stop == length
    for a, b in zip(spans, spans[1:]):
        assert a.keep_stop == b.keep_start  # kept parts partition the axis
    size = spans[0].read_stop - spans[0].read_start
    assert size <= (min(tile, length) if tile > 0 else length)  # memory bounded by the tile
    assert len(spans) == 1 or size > 2 * radius
    for s in spans:
        assert s.read_stop - s.read_start == size  # one tile shape for the whole image
        assert 0 <= s.read_start <= s.keep_start < s.keep_stop <= s.read_stop <= length
        # a kept pixel is `radius` away from the tile's edge, unless that edge is the image's border
        assert s.keep_start - s.read_start >= radius or s.read_start == 0
        assert s.read_stop - s.keep_stop >= radius or s.read_stop == length


def test_tile_must_exceed_the_receptive_field():
    with pytest.raises(ValueError, match="must exceed twice the receptive-field radius"):
        tiling.spans(100, 36, 18)


def test_border_pixels_see_the_same_zero_padding():
    """A 3x3 box sum over ones: 9 inside, 6 on edges, 4 in corners; tiles must keep that exactly."""
    inputs = keras.Input((None, None, 3))
    box = keras.layers.Conv2D(3, 3, padding="same", use_bias=False, kernel_initializer="ones")(inputs)
    model = keras.Model(inputs, box)
    ones = np.ones((1, 13, 17, 3), np.float32)
    tiled = tiling.tiled_apply(tiling.keras_fn(model), ones, tile=5, radius=tiling.model_radius(model))
    np.testing.assert_array_equal(tiled, model(ones).numpy())
    assert tiled[0, 0, 0, 0] == 12 and tiled[0, 0, 5, 0] == 18 and tiled[0, 6, 8, 0] == 27


@pytest.mark.parametrize("h, w, tile", [(75, 101, 48), (49, 50, 48), (20, 31, 48), (64, 64, 0)])
def test_tiled_generator_equals_whole_image(generator, h, w, tile):
    radius = tiling.model_radius(generator)
    assert radius == 18  # DPED: 9x9, eight 3x3 in the blocks, two 3x3, 9x9 -> field 37
    x = _image(h, w)
    calls = []
    tiled = tiling.tiled_apply(tiling.keras_fn(generator), x, tile=tile, radius=radius,
                               on_tile=lambda: calls.append(1))
    assert len(calls) == (tiling.tile_count(h, w, tile, radius) if tile else 1)
    np.testing.assert_allclose(tiled, generator(x).numpy(), atol=1e-5)


def test_overlap_below_the_radius_is_not_exact(generator):
    x = _image(75, 101)
    whole = generator(x).numpy()
    exact = tiling.tiled_apply(tiling.keras_fn(generator), x, tile=48, radius=18)
    short = tiling.tiled_apply(tiling.keras_fn(generator), x, tile=48, radius=9)
    assert np.abs(short - whole).max() > 100 * max(np.abs(exact - whole).max(), 1e-7)


def test_radius_follows_kernels_and_dilation():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 5, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", dilation_rate=3, activation="relu")(x)
    x = keras.layers.Add()([x, keras.layers.Conv2D(4, 1)(inputs)])
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(x))
    assert tiling.model_radius(model) == 2 + 3 + 1
    x = _image(41, 29)
    np.testing.assert_allclose(tiling.tiled_apply(tiling.keras_fn(model), x, tile=16, radius=6),
                               model(x).numpy(), atol=1e-5)


def test_instance_norm_model_tiles_exactly_in_passes():
    keras.utils.set_random_seed(2)
    model = official_dped.build_generator(filters=8)
    for layer in tiling.spatial_norm_layers(model):
        layer.set_weights([np.random.normal(0, 0.3, 8).astype("f"), np.random.normal(1, 0.3, 8).astype("f")])
    x = _image(57, 83, seed=3)
    whole = model(x).numpy()
    naive = tiling.tiled_apply(tiling.keras_fn(model), x, tile=44, radius=18)
    assert np.abs(naive - whole).max() > 1e-2  # per-tile statistics change the picture
    with pytest.raises(tiling.NotTileableError):
        tiling.model_radius(model)
    calls = []
    tiled = tiling.tiled_predict(model, x, tile=44, on_tile=lambda: calls.append(1))
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    assert len(calls) == tiling.tiled_predict_count(model, 57, 83, 44)
    assert tiling.passes(model) == 9


def test_integer_images_tile_in_passes_like_their_float_image():
    """uint8 in, uint8 out (converted per tile) == the float32 image's result, clipped and rounded."""
    keras.utils.set_random_seed(4)
    model = official_dped.build_generator(filters=8)
    pixels = np.random.default_rng(4).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    as_float = tiling.tiled_predict(model, pixels.astype(np.float32) / 255.0, tile=40)
    expected = np.round(np.clip(as_float, 0.0, 1.0) * 255.0).astype(np.uint8)
    samples = tiling.tiled_predict(model, pixels, tile=40, dtype=np.uint8)
    assert samples.dtype == np.uint8 and samples.shape == (1, 45, 61, 3)
    np.testing.assert_array_equal(samples, expected)
    assert len(np.unique(samples)) > 50  # not a flat image: the comparison means something
