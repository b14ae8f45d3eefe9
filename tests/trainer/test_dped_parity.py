"""DPED's training terms against their sources, restated here in NumPy from the sources themselves.

Nothing below calls trainer/dped_losses.py or trainer/blocks.py: each restatement is written from
the source's code or text (file:line), on the same fixed tensors our DPED model sees, and must
equal our term within RTOL. The networks' outputs (generator, discriminator) are taken from our
model: the terms and their normalisation are under test, not the random networks. The content
network is a small random conv net standing in for VGG-19, restated in NumPy too.

Sources: official = aiff22/DPED (train_model.py, utils.py, models.py); paper = Ignatov et al.,
ICCV 2017, Sec. 4; rebalanced = JuheonYi/DPED-TensorFlow (DPED.py, ops.py, DPED-main.ipynb).
"""
import numpy as np
import pytest
import scipy.stats as st
import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import dped, dped_losses, recipes
from phone2dslr.trainer.dped_networks import build_discriminator, generator_for
from phone2dslr.trainer.instance_norm import InstanceNormalization

RTOL = 1e-5
B, SIZE = 3, 24
MEAN_RGB = np.array([123.68, 116.779, 103.939])  # rebalanced ops.py:6
GRAY = np.array([0.2989, 0.5870, 0.1140])  # tf.image.rgb_to_grayscale's weights
# Loss weights as the sources set them (not read from our recipes).
SOURCE_WEIGHTS = {
    "official-code": {"content": 10.0, "color": 0.5, "texture": 1.0, "tv": 2000.0},  # utils.py:46-49
    "paper": {"content": 1.0, "color": 0.1, "texture": 0.4, "tv": 400.0},  # Sec. 4, total loss
    "rebalanced": {"content": 2.0, "color": 1.2, "texture": 1.0, "tv": 1.0 / 400.0},  # notebook cell 0
    "demo": {"content": 1.0, "color": 1.0, "texture": 0.0005, "tv": 0.0},  # our demo recipe, as documented
}
RECIPES = tuple(SOURCE_WEIGHTS)


# --- NumPy restatements of the sources' pieces -------------------------------------------------

def np_gauss_kernel(kernlen=21, nsig=3):
    """utils.gauss_kernel (official utils.py:20-29; rebalanced ops.py:23-32), as written."""
    interval = (2 * nsig + 1.) / kernlen
    x = np.linspace(-nsig - interval / 2., nsig + interval / 2., kernlen + 1)
    kern1d = np.diff(st.norm.cdf(x))
    kernel_raw = np.sqrt(np.outer(kern1d, kern1d))
    return kernel_raw / kernel_raw.sum()


def np_paper_kernel(size=21, sigma=3.0):
    """Paper Sec. 3.1.1, colour loss: G(k, l) = A exp(-(k - mu)^2 / (2 sigma) - (l - mu)^2 / (2 sigma))
    with A = 0.053, mu = 0, sigma = 3, as printed (not renormalised)."""
    k = np.arange(size) - size // 2
    return 0.053 * np.exp(-(k[:, None] ** 2) / (2 * sigma) - (k[None, :] ** 2) / (2 * sigma))


def np_depthwise_same(x, kernel):
    """tf.nn.depthwise_conv2d(x, kernel per channel, stride 1, 'SAME'), as utils.blur (utils.py:32-34)."""
    p = kernel.shape[0] // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.zeros(x.shape)
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            out += kernel[i, j] * xp[:, i:i + x.shape[1], j:j + x.shape[2], :]
    return out


def np_conv_same(x, w, b):
    """tf.nn.conv2d(x, w, stride 1, 'SAME') + b (cross-correlation, odd kernel)."""
    p = w.shape[0] // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.zeros(x.shape[:3] + (w.shape[3],))
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            out += np.einsum("bhwc,co->bhwo", xp[:, i:i + x.shape[1], j:j + x.shape[2], :], w[i, j])
    return out + b


def relu(x):
    return np.maximum(x, 0.0)


def l2_loss(t):
    return np.sum(t ** 2) / 2.0  # tf.nn.l2_loss


def gray(x):
    return x @ GRAY[:, None]  # tf.image.rgb_to_grayscale: [..., 3] -> [..., 1]


def sigmoid_ce(logits, labels):
    """tf.nn.sigmoid_cross_entropy_with_logits, its documented stable form."""
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


# --- the content stand-in: conv 3x3 (4) + ReLU, max pool 2, conv 3x3 (5) + ReLU -----------------

def _content_weights():
    rng = np.random.default_rng(7)
    return [rng.normal(0, 0.3, (3, 3, 3, 4)), rng.normal(0, 0.1, 4),
            rng.normal(0, 0.3, (3, 3, 4, 5)), rng.normal(0, 0.1, 5)]


def _content_net() -> keras.Model:
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="c2")(x)
    model = keras.Model(inputs, x, name="content_standin")
    w = _content_weights()
    model.get_layer("c1").set_weights([w[0].astype(np.float32), w[1].astype(np.float32)])
    model.get_layer("c2").set_weights([w[2].astype(np.float32), w[3].astype(np.float32)])
    model.trainable = False
    return model


def np_features(x):
    w = _content_weights()
    h = relu(np_conv_same(x, w[0], w[1]))
    b, hh, ww, c = h.shape
    h = h.reshape(b, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))  # 2x2 max pool, stride 2
    return relu(np_conv_same(h, w[2], w[3]))


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = np.stack([0.5 + 0.3 * np.sin(4 * xx + k) * np.cos(3 * yy - k) for k in range(3)], -1)
    dslr = np.clip(base[None] + rng.normal(0, 0.05, (B, SIZE, SIZE, 3)), 0, 1).astype(np.float32)
    phone = np.clip(0.7 * dslr + 0.1 + rng.normal(0, 0.05, dslr.shape), 0, 1).astype(np.float32)
    return phone, dslr


def _model(name: str) -> dped.DPED:
    keras.utils.set_random_seed(1)
    recipe = recipes.get("dped", name)
    opts = recipe.options
    return dped.DPED(generator_for(opts["generator"], 8, recipe.head), build_discriminator(SIZE, opts["discriminator"]),
                     _content_net(), recipe.loss_weights, dped_losses.LossForms.from_options(opts), name="dped")


def _source_terms(name, model, enh, dslr):
    """The source's four terms on our generator's output `enh` (float64), D = our discriminator."""
    d = lambda g: model.discriminator(g.astype(np.float32), training=True).numpy().astype(np.float64)
    n, h, w, _ = enh.shape
    f_e, f_d = np_features(enh), np_features(dslr)
    if name == "official-code":
        k = np_gauss_kernel(21, 3)  # utils.py:33
        color = np.sum((np_depthwise_same(dslr, k) - np_depthwise_same(enh, k)) ** 2) / (2 * n)  # :86
        content = 2 * l2_loss(f_e - f_d) / (np.prod(f_d.shape[1:]) * n)  # train_model.py:78-79
        y_tv = l2_loss(enh[:, 1:, :, :] - enh[:, :h - 1, :, :])  # :93
        x_tv = l2_loss(enh[:, :, 1:, :] - enh[:, :, :w - 1, :])  # :94
        tv = 2 * (x_tv / np.prod(enh[:, :, 1:, :].shape[1:]) + y_tv / np.prod(enh[:, 1:, :, :].shape[1:])) / n
        adv = np.zeros((n, 1))  # G step: all_zeros (:155)
        pred = d((gray(enh).reshape(n, -1) * (1 - adv) + gray(dslr).reshape(n, -1) * adv).reshape(n, h, w, 1))
        target = np.concatenate([adv, 1 - adv], 1)  # :63
        texture = -(-np.sum(target * np.log(np.clip(pred, 1e-10, 1.0))))  # :65-66
        return {"content": content, "color": color, "texture": texture, "tv": tv}
    if name == "paper":
        k = np_paper_kernel(21, 3.0)
        bd, be = np_depthwise_same(dslr, k), np_depthwise_same(enh, k)
        color = np.mean([np.sum((be[i] - bd[i]) ** 2) for i in range(n)])  # ||X_b - Y_b||^2 per image
        content = np.mean([np.sum((f_e[i] - f_d[i]) ** 2) / f_d[i].size for i in range(n)])  # 1/(CjHjWj)
        tv = np.mean([np.sum((enh[i, :, 1:] - enh[i, :, :-1]) ** 2) / enh[i, :, 1:].size
                      + np.sum((enh[i, 1:] - enh[i, :-1]) ** 2) / enh[i, 1:].size for i in range(n)])
        logits = d(np.concatenate([gray(dslr), gray(enh)]))  # D on the batch's DSLR and enhanced images
        texture = -np.sum(log_sigmoid(logits[n:]))  # -sum_i log D(F_W(I_s))
        return {"content": content, "color": color, "texture": texture, "tv": tv}
    if name == "demo":  # every term a mean; non-saturating texture term (dped_recipes.DEMO)
        k = np_gauss_kernel(21, 3)
        color = np.mean((np_depthwise_same(dslr, k) - np_depthwise_same(enh, k)) ** 2)
        content = np.mean((f_e - f_d) ** 2)
        tv = np.mean((enh[:, :, 1:] - enh[:, :, :-1]) ** 2) + np.mean((enh[:, 1:] - enh[:, :-1]) ** 2)
        logits = d(np.concatenate([gray(dslr), gray(enh)]))
        texture = -np.mean(log_sigmoid(logits[n:]))
        return {"content": content, "color": color, "texture": texture, "tv": tv}
    # rebalanced: its tensors are (img - mean_RGB) / 255 (ops.py:8-9, utils.py:79-80)
    enh_p, dslr_p = (enh * 255 - MEAN_RGB) / 255, (dslr * 255 - MEAN_RGB) / 255
    k = np_gauss_kernel(21, 3)  # ops.py:35
    color = 255 * np.mean((np_depthwise_same(dslr_p, k) - np_depthwise_same(enh_p, k)) ** 2)  # DPED.py:107
    content = np.mean((f_e - f_d) ** 2)  # DPED.py:115 (the stand-in takes [0, 1] images, as our VGG)
    tv = np.mean([np.sum(np.abs(enh_p[i, 1:] - enh_p[i, :-1])) + np.sum(np.abs(enh_p[i, :, 1:] - enh_p[i, :, :-1]))
                  for i in range(n)])  # DPED.py:118, tf.image.total_variation per image
    logits_dslr, logits_enhanced = d(gray(dslr_p)), d(gray(enh_p))  # DPED.py:126-127, gray inside D (:144)
    texture = np.mean(sigmoid_ce(logits_dslr, logits_enhanced))  # DPED.py:110, as written
    return {"content": content, "color": color, "texture": texture, "tv": tv}


# --- tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", RECIPES)
def test_generator_terms_parity(name, images):
    phone, dslr = images
    model = _model(name)
    out, enhanced = model.generator_terms(tf.constant(phone), tf.constant(dslr))
    source = _source_terms(name, model, enhanced.numpy().astype(np.float64), dslr.astype(np.float64))
    weights = SOURCE_WEIGHTS[name]
    for term, value in source.items():
        np.testing.assert_allclose(float(out[f"{term}_loss"]), value, rtol=RTOL, err_msg=f"{name} {term}")
        np.testing.assert_allclose(float(out[f"w_{term}_loss"]), weights[term] * value, rtol=RTOL,
                                   err_msg=f"{name} weighted {term}")
    total = sum(weights[t] * v for t, v in source.items())  # official train_model.py:99; paper total; DPED.py:121
    np.testing.assert_allclose(float(out["g_loss"]), total, rtol=RTOL)


@pytest.mark.parametrize("name", RECIPES)
def test_discriminator_terms_parity(name, images):
    phone, dslr = images
    model = _model(name)
    enh = model.generator(phone, training=True).numpy().astype(np.float64)
    d = lambda g: model.discriminator(g.astype(np.float32), training=True).numpy().astype(np.float64)
    n = B
    if name == "official-code":
        swaps = np.array([1.0, 0.0, 1.0])[:, None]  # train_model.py:163
        adversarial = gray(enh).reshape(n, -1) * (1 - swaps) + gray(dslr).reshape(n, -1) * swaps  # :55
        pred = d(adversarial.reshape(n, SIZE, SIZE, 1))
        target = np.concatenate([swaps, 1 - swaps], 1)
        loss = -np.sum(target * np.log(np.clip(pred, 1e-10, 1.0)))  # :65
        accuracy = np.mean(np.argmax(pred, 1) == np.argmax(target, 1))  # :68-69
        ours = model.discriminator_terms(tf.constant(dslr), tf.constant(enh, tf.float32), swaps=swaps[:, 0])
    elif name in ("paper", "demo"):
        logits = d(np.concatenate([gray(dslr), gray(enh)]))
        reduce = np.sum if name == "paper" else np.mean
        loss = -reduce(log_sigmoid(logits[:n])) - reduce(log_sigmoid(-logits[n:]))  # -log D(y) - log(1 - D(G(x)))
        accuracy = np.mean(np.concatenate([logits[:n] > 0, logits[n:] <= 0]))
        ours = model.discriminator_terms(tf.constant(dslr), tf.constant(enh, tf.float32))
    else:
        real, fake = d(gray((dslr * 255 - MEAN_RGB) / 255)), d(gray((enh * 255 - MEAN_RGB) / 255))
        # DPED.py:135-138
        loss = np.mean(sigmoid_ce(real, np.ones_like(real))) + np.mean(sigmoid_ce(fake, np.zeros_like(fake)))
        accuracy = np.mean(np.concatenate([real > 0, fake <= 0]))
        ours = model.discriminator_terms(tf.constant(dslr), tf.constant(enh, tf.float32))
    np.testing.assert_allclose(float(ours[0]), loss, rtol=RTOL)
    assert float(ours[1]) == pytest.approx(accuracy)
    if name != "official-code":  # the 'same'-batch recipes log D's loss from the generator's D call
        out, _ = model.generator_terms(tf.constant(phone), tf.constant(dslr))
        np.testing.assert_allclose(float(out["d_loss"]), loss, rtol=RTOL)


@pytest.mark.parametrize("name", RECIPES)
def test_blur_kernel_parity(name):
    kernel = _model(name).kernel
    expected = np_paper_kernel(21, 3.0) if name == "paper" else np_gauss_kernel(21, 3)
    np.testing.assert_allclose(kernel, expected, rtol=RTOL, atol=1e-9)
    assert kernel.shape == (21, 21)
    # the official construction is not a sigma-3 Gaussian: its taps fall off more slowly
    assert not np.allclose(np_gauss_kernel(21, 3), np_paper_kernel(21, 3.0), rtol=0.05)


def test_instance_norm_parity():
    rng = np.random.default_rng(5)
    x = rng.normal(2.0, 3.0, (2, 7, 9, 4))
    layer = InstanceNormalization()
    layer.build(x.shape)
    shift, scale = rng.normal(0, 1, 4), rng.normal(1, 0.5, 4)
    layer.set_weights([shift.astype(np.float32), scale.astype(np.float32)])
    mu = x.mean(axis=(1, 2), keepdims=True)  # models.py:125, tf.nn.moments over [1, 2]
    sigma_sq = ((x - mu) ** 2).mean(axis=(1, 2), keepdims=True)
    expected = scale * ((x - mu) / (sigma_sq + 1e-3) ** 0.5) + shift  # models.py:129-132
    np.testing.assert_allclose(layer(x.astype(np.float32)).numpy(), expected, rtol=RTOL, atol=1e-5)


def test_rebalanced_discriminator_batch_norm_is_fixed_parity():
    """tf.layers.batch_normalization(x) without training=True (DPED.py:152): moving mean 0 and
    variance 1 (never updated), epsilon 1e-3: gamma * x / sqrt(1 + 1e-3) + beta, in training too."""
    model = build_discriminator(SIZE, "rebalanced")
    layer = model.get_layer("norm2")
    rng = np.random.default_rng(2)
    gamma, beta = rng.normal(1, 0.3, 128), rng.normal(0, 0.3, 128)
    layer.set_weights([gamma.astype(np.float32), beta.astype(np.float32), np.zeros(128, np.float32),
                       np.ones(128, np.float32)])
    probe = keras.Model(model.input, layer.output)
    conv = keras.Model(model.input, model.get_layer("conv2").output)
    x = rng.uniform(0, 1, (2, SIZE, SIZE, 1)).astype(np.float32)
    expected = gamma * conv(x).numpy() / np.sqrt(1 + 1e-3) + beta
    for _ in range(2):  # training=True neither uses batch statistics nor moves the moving ones
        np.testing.assert_allclose(probe(x, training=True).numpy(), expected, rtol=RTOL, atol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), 0.0)


def test_rebalanced_generator_parity(images):
    """DPED.py:71-103 on (img - mean_RGB) / 255 (ops.py:8-9), its output + mean_RGB / 255 (as
    postprocess, ops.py:11-12): our generator with the source's parameters (our head's bias is the
    source's + mean_RGB / 255, the same function under the same updates)."""
    phone, _ = images
    model = generator_for("rebalanced", 8, "conv1x1")
    w = {layer.name: layer.get_weights() for layer in model.layers if layer.get_weights()}
    offset = MEAN_RGB / 255
    x = (phone.astype(np.float64) * 255 - MEAN_RGB) / 255
    h = relu(np_conv_same(x, *w["conv_in"]))  # CONV_1 9x9 (:74-75)
    for i in range(1, 5):  # resblock: conv relu conv relu + input (:93-103)
        t = relu(np_conv_same(h, *w[f"res{i}_conv1"]))
        h = relu(np_conv_same(t, *w[f"res{i}_conv2"])) + h
    for i in range(1, 4):  # CONV_2..CONV_4, 3x3 + relu (:84-89)
        h = relu(np_conv_same(h, *w[f"conv_post{i}"]))
    kernel, bias = w["enhanced"]
    out = np_conv_same(h, kernel, bias - offset)  # CONV_5, 1x1, linear (:90)
    np.testing.assert_allclose(model(phone).numpy(), out + offset, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(bias, offset, rtol=1e-6)  # the source's zero bias, shifted
