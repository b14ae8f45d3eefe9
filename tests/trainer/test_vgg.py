import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import vgg

LAYER = vgg.WESPE_LAYER  # block2_conv2: cheap to run, and deep enough to need 4 loaded convs


def _random_vgg(seed):
    keras.utils.set_random_seed(seed)
    return keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))


def _reference(model, x):
    return keras.Model(model.input, model.get_layer(LAYER).output)(vgg.vgg_preprocess(x))


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("vgg")
    a, b = _random_vgg(1), _random_vgg(2)
    a.save_weights(str(d / "a.h5"))  # the layout of Keras' ..._notop.h5 files
    b.save_weights(str(d / "b.weights.h5"))
    keras.Model(a.input, a.get_layer("block1_conv2").output).save_weights(str(d / "short.h5"))
    return d, a, b


def test_preprocess_matches_keras_caffe_mode():
    x = tf.random.uniform([2, 8, 8, 3], seed=1)
    expected = keras.applications.vgg19.preprocess_input(x.numpy() * 255.0)
    np.testing.assert_allclose(vgg.vgg_preprocess(x), expected, rtol=1e-5, atol=1e-3)


def test_h5_weights_are_loaded_and_change_the_features(vgg_files):
    d, a, b = vgg_files
    x = tf.random.uniform([1, 16, 16, 3], seed=2)
    from_a = vgg.content_model("vgg19", str(d / "a.h5"), LAYER)
    from_b = vgg.content_model("vgg19", str(d / "b.weights.h5"), LAYER)
    np.testing.assert_allclose(from_a(x), _reference(a, x), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(from_b(x), _reference(b, x), rtol=1e-4, atol=1e-3)
    assert not np.allclose(from_a(x), from_b(x))
    assert from_a.trainable_weights == [] and from_a.output_shape == (None, None, None, 128)


def test_bad_weights_paths_raise_one_clear_error(vgg_files, tmp_path):
    d, _, _ = vgg_files
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    cases = [
        (str(tmp_path / "missing.h5"), "not found"),
        (str(bad), "cannot load VGG weights"),
        (str(d / "short.h5"), "lacks layer"),  # holds block1 only
        (str(tmp_path), "no saved_model.pb"),  # a directory that is no Hub module
    ]
    for path, message in cases:
        with pytest.raises(vgg.ContentWeightsError, match=message) as err:
            vgg.content_model("vgg19", path, LAYER)
        assert "\n" not in str(err.value)
    with pytest.raises(vgg.ContentWeightsError, match="nothing is downloaded"):
        vgg.content_model("vgg19", "", LAYER)


class _TinyFeatures(tf.Module):
    def __init__(self, seed, dict_output=False):
        super().__init__()
        self.kernel = tf.Variable(tf.random.stateless_normal([3, 3, 3, 4], seed=[seed, 0]))
        self.dict_output = dict_output

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        f = tf.nn.relu(tf.nn.conv2d(images, self.kernel, 1, "SAME"))
        return {"block1_conv2": f * 2.0, LAYER: f} if self.dict_output else f


def test_hub_module_directory_is_loaded(tmp_path):
    x = tf.random.uniform([1, 8, 8, 3], seed=3)
    outputs = []
    for seed, dict_output in ((1, False), (2, False), (1, True)):
        module = _TinyFeatures(seed, dict_output)
        path = str(tmp_path / f"hub{seed}{dict_output}")
        tf.saved_model.save(module, path)
        features = vgg.content_model("vgg19", path, LAYER)
        expected = module(x)[LAYER] if dict_output else module(x)
        np.testing.assert_allclose(features(x), expected, rtol=1e-5)
        assert features.trainable_weights == []
        outputs.append(features(x).numpy())
    assert not np.allclose(outputs[0], outputs[1])  # other weights, other features
    with pytest.raises(vgg.ContentWeightsError, match="outputs"):
        vgg.content_model("vgg19", str(tmp_path / "hub1True"), "block5_conv4")


def test_pixel_content_is_identity():
    x = tf.random.uniform([2, 5, 7, 3], seed=4)
    np.testing.assert_array_equal(vgg.content_model("pixel")(x), x)
