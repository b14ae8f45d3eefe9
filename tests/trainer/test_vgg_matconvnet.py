"""VGG-19 content features from a MatConvNet .mat (imagenet-vgg-verydeep-19.mat layout).

The test writes .mat files in the releases' layouts from random Keras VGG19 weights, then checks the
features against (a) the Keras .h5 path on the same weights and (b) a restatement of the official
DPED vgg.py net() (scipy positional read, tf.nn.conv2d / max_pool 'SAME', x255 minus the RGB mean).
"""
import numpy as np
import pytest
import scipy.io
import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import vgg, vgg_matconvnet

# MatConvNet's VGG-19 `layers` cell, restated from DPED vgg.py:9-22 plus the classifier head.
NAMES = ("conv1_1 relu1_1 conv1_2 relu1_2 pool1 conv2_1 relu2_1 conv2_2 relu2_2 pool2 "
         "conv3_1 relu3_1 conv3_2 relu3_2 conv3_3 relu3_3 conv3_4 relu3_4 pool3 "
         "conv4_1 relu4_1 conv4_2 relu4_2 conv4_3 relu4_3 conv4_4 relu4_4 pool4 "
         "conv5_1 relu5_1 conv5_2 relu5_2 conv5_3 relu5_3 conv5_4 relu5_4 pool5 "
         "fc6 relu6 fc7 relu7 fc8 prob").split()
IMAGE_MEAN = np.array([123.68, 116.779, 103.939])  # DPED vgg.py:5, RGB
HEAD = {"fc6": (1, 1, 512, 8), "fc7": (1, 1, 8, 8), "fc8": (1, 1, 8, 10)}  # tiny stand-ins, never read


def _cell(*items):
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


def _struct(name, params, release):
    """One layer struct as each release lays it out; `params` = (kernel, bias) for conv / fc layers."""
    kinds = {"relu": "relu", "pool": "pool", "prob": "softmax"}
    kind = "conv" if params else kinds[name.rstrip("0123456789_")]
    pool = {"method": "max", "pool": np.array([[2.0, 2.0]]), "stride": np.array([[2.0, 2.0]]),
            "pad": np.zeros((1, 4))}
    if release == "old":  # weights first (what DPED's weights[i][0][0][0][0] reads), top-level normalization
        if params:
            return {"weights": _cell(params[0], params[1][None, :]), "pad": np.ones((1, 4)), "type": kind,
                    "name": name, "stride": np.ones((1, 2))}
        return {"name": name, **pool, "type": kind} if kind == "pool" else {"type": kind, "name": name}
    if release == "new":  # name, type, weights, ...; every layer has a weights cell; bias [out, 1]
        weights = _cell(params[0], params[1][:, None]) if params else np.empty((1, 0), dtype=object)
        extra = pool if kind == "pool" else {"size": np.array([params[0].shape], float)} if params else {}
        return {"name": name, "type": kind, "weights": weights, **extra, "precious": 0.0}
    if release == "filters":  # early MatConvNet: separate filters / biases fields
        return {"name": name, "type": kind, "filters": params[0], "biases": params[1]} if params else \
            {"name": name, "type": kind}
    # "nameless": no name field, no weights field: read by position, weights as the first field
    return {"w": _cell(*params), "stride": np.ones((1, 2))} if params else {"type": kind}


def _write_mat(path, convs, release, last="prob"):
    rng = np.random.default_rng(0)
    head = {n: (rng.normal(size=s).astype(np.float32), np.zeros(s[-1], np.float32)) for n, s in HEAD.items()}
    names = NAMES[:NAMES.index(last) + 1]
    layers = _cell(*[_struct(n, convs.get(n) or head.get(n), release) for n in names])
    mean = {"averageImage": np.full((2, 2, 3), 9.0)}  # differs from IMAGE_MEAN: must be ignored
    extra = {"normalization": mean} if release == "old" else {"meta": {"normalization": mean}}
    scipy.io.savemat(str(path), {"layers": layers, **extra})
    return str(path)


def _mat_convs(model):
    """Keras VGG19 conv weights -> MatConvNet layout: the transpose DPED vgg.py:33 undoes, and
    conv1_1's input channels reversed (Keras' VGG19 takes BGR, MatConvNet's RGB)."""
    convs = {}
    for layer in model.layers:
        if "_conv" in layer.name:
            kernel, bias = layer.get_weights()
            name = "conv" + layer.name[5] + "_" + layer.name[-1]
            kernel = kernel[:, :, ::-1, :] if name == "conv1_1" else kernel
            convs[name] = (np.ascontiguousarray(np.transpose(kernel, (1, 0, 2, 3))), bias)
    return convs


def _official_weights(path):
    """DPED vgg.py:24-34 restated: positional read of `layers`, kernels transposed, bias flattened."""
    layers = scipy.io.loadmat(path)["layers"][0]
    out = {}
    for i, name in enumerate(NAMES[:36]):
        if name.startswith("conv"):
            kernels, bias = layers[i][0][0][0][0]
            out[name] = (np.transpose(kernels, (1, 0, 2, 3)), bias.reshape(-1))
    return out


def _dped_net(weights, images, last, padding="SAME"):
    """DPED vgg.py net() on vgg.preprocess(images * 255) (train_model.py:75), restated with tf.nn."""
    x = tf.constant(images * 255.0 - IMAGE_MEAN, tf.float32)
    for name in NAMES[:NAMES.index(last) + 1]:
        if name.startswith("conv"):
            kernel, bias = weights[name]
            x = tf.nn.bias_add(tf.nn.conv2d(x, kernel, strides=1, padding="SAME"), bias)
        elif name.startswith("relu"):
            x = tf.nn.relu(x)
        else:
            x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding=padding)
    return x.numpy()


def _close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mat")
    keras.utils.set_random_seed(3)
    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    rng = np.random.default_rng(3)
    for layer in model.layers:  # Keras initialises biases to 0: give them values, so they are checked
        if "_conv" in layer.name:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.05, bias.shape).astype(np.float32)])
    model.save_weights(str(d / "keras.h5"))
    convs = _mat_convs(model)
    paths = {"h5": str(d / "keras.h5"), "old": _write_mat(d / "imagenet-vgg-verydeep-19.mat", convs, "old")}
    for release in ("new", "filters", "nameless"):  # up to block 2, enough for relu2_2
        paths[release] = _write_mat(d / f"{release}.mat", convs, release, last="pool2")
    return paths, _official_weights(paths["old"])


def _images(size, seed):
    return np.random.default_rng(seed).uniform(size=(1, size, size, 3)).astype(np.float32)


def test_layer_names_map_keras_to_matconvnet():
    assert vgg_matconvnet.matconvnet_layer_name(vgg.DPED_LAYER) == "relu5_4"
    assert vgg_matconvnet.matconvnet_layer_name(vgg.WESPE_LAYER) == "relu2_2"
    assert vgg_matconvnet.matconvnet_layer_name("block3_pool") == "pool3"
    assert vgg_matconvnet.matconvnet_layer_name("relu4_1") == "relu4_1"
    for bad in ("block2_conv3", "block6_conv1", "conv1_1", "fc6"):
        with pytest.raises(vgg.ContentWeightsError, match="no layer"):
            vgg_matconvnet.matconvnet_layer_name(bad)


def test_mat_features_equal_the_keras_h5_path_on_the_same_weights(files):
    paths, _ = files
    x = _images(32, 1)  # divisible by 16: 'same' and 'valid' pooling agree
    from_mat = vgg.content_model("vgg19", paths["old"], vgg.DPED_LAYER)
    from_h5 = vgg.content_model("vgg19", paths["h5"], vgg.DPED_LAYER)
    expected = from_h5(x).numpy()
    assert expected.shape == (1, 2, 2, 512) and np.abs(expected).max() > 0
    _close(from_mat(x).numpy(), expected)
    assert from_mat.trainable_weights == [] and len(from_mat.non_trainable_weights) == 32
    assert [l.name for l in from_mat.layers if "conv" in l.name][-1] == "conv5_4"  # nothing past relu5_4


def test_mat_features_restate_dped_net_with_same_pooling_at_odd_size(files):
    paths, official = files
    x = _images(100, 2)  # 100 -> 50 -> 25 -> 13 -> 7 with 'SAME' pooling, 25 -> 12 -> 6 with 'valid'
    ours = vgg.content_model("vgg19", paths["old"], vgg.DPED_LAYER)(x).numpy()
    same = _dped_net(official, x, "relu5_4")
    valid = _dped_net(official, x, "relu5_4", padding="VALID")
    assert ours.shape == same.shape == (1, 7, 7, 512)
    _close(ours, same)
    assert valid.shape == (1, 6, 6, 512) and not np.allclose(ours[:, :6, :6], valid, rtol=1e-2, atol=1e-2)
    assert vgg.content_model("vgg19", paths["h5"], vgg.DPED_LAYER)(x).shape == (1, 6, 6, 512)


@pytest.mark.parametrize("release", ["old", "new", "filters", "nameless"])
def test_each_file_layout_gives_the_official_features(files, release):
    paths, official = files
    x = _images(18, 3)  # relu2_2 at 9 x 9
    features = vgg_matconvnet.matconvnet_features(paths[release], vgg.WESPE_LAYER)
    assert features.output_shape == (None, None, None, 128)
    _close(features(x).numpy(), _dped_net(official, x, "relu2_2"))
    _close(vgg_matconvnet.matconvnet_features(paths[release], "block2_pool")(x).numpy(),
           _dped_net(official, x, "pool2"))


def test_runs_in_tf_function_under_a_distribution_strategy(files):
    paths, official = files
    x = tf.constant(_images(12, 4))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        features = vgg.content_model("vgg19", paths["new"], vgg.WESPE_LAYER)

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            f = features(images)
            loss = tf.reduce_mean(tf.square(f))
        return f, tape.gradient(loss, images)

    f, grad = strategy.run(step, args=(x,))
    _close(f.numpy(), _dped_net(official, x.numpy(), "relu2_2"))
    assert grad.shape == x.shape and np.abs(grad.numpy()).max() > 0  # the content loss reaches the image


def test_bad_mat_files_raise_one_line_errors(files, tmp_path):
    paths, official = files
    text = tmp_path / "text.mat"
    text.write_text("not a mat file")
    no_layers = str(tmp_path / "no_layers.mat")
    scipy.io.savemat(no_layers, {"meta": {"normalization": {"averageImage": np.zeros(3)}}})
    numeric = str(tmp_path / "numeric.mat")
    scipy.io.savemat(numeric, {"layers": np.zeros((1, 43))})
    narrow = {n: (np.transpose(k, (1, 0, 2, 3)), b) for n, (k, b) in official.items() if n < "conv2"}
    narrow["conv1_2"] = (narrow["conv1_2"][0][..., :32], narrow["conv1_2"][1][:32])  # 32 filters, not 64
    narrow_path = _write_mat(tmp_path / "narrow.mat", narrow, "new", last="pool1")
    cases = [
        (str(tmp_path / "missing.mat"), vgg.DPED_LAYER, "not found"),
        (str(text), vgg.DPED_LAYER, "cannot read MatConvNet file"),
        (no_layers, vgg.DPED_LAYER, "holds no 'layers'"),
        (numeric, vgg.DPED_LAYER, "not a cell"),
        (paths["new"], vgg.DPED_LAYER, r"lacks layer\(s\) conv3_1, conv3_2"),  # truncated after pool2
        (paths["nameless"], "block3_conv1", "lacks layer"),
        (narrow_path, "block1_conv2", r"conv1_2 has kernel \(3, 3, 64, 32\)"),
    ]
    for path, layer, message in cases:
        with pytest.raises(vgg.ContentWeightsError, match=message) as err:
            vgg.content_model("vgg19", path, layer)
        assert "\n" not in str(err.value) and path in str(err.value)
