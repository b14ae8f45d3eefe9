"""WESPE recipes against their sources, term by term, restated here in NumPy from the sources.

paper: Ignatov et al., WESPE, CVPRW 2018 (arXiv 1709.01118) Sec. 3.1-3.5, with the choices
wespe_recipes.py documents. wespe-keras: GBATZOLIS/Wespe-Keras@e6ab21d modelwithVGGloss.py,
loss_functions.py, preprocessing.py, with Keras 2's compile() reduction (keras 2.2
engine/training_utils.py weighted_masked_objective) restated in `_keras2_loss`.
The tensors are fixed: images, discriminator outputs, and features from a small random conv net
standing in for VGG. Nothing here calls our loss code to build an expected value.
"""
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
import tf_keras as keras

from phone2dslr.config import TrainConfig
from phone2dslr.trainer import wespe, wespe_losses

RTOL = 1e-5
RNG = np.random.default_rng(7)
A = RNG.uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)        # phone batch
B = RNG.uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)        # DSLR batch (unpaired, 3 images)
FAKE_B = RNG.uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)   # G(a)
REC_A = RNG.uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)    # F(G(a))
REC_B = RNG.uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)    # G(F(b))
LOGITS_REAL = RNG.normal(0, 2, (3, 1)).astype(np.float32)       # paper: one logit per image
LOGITS_FAKE = RNG.normal(0, 2, (2, 1)).astype(np.float32)
PATCH_REAL = RNG.normal(0.5, 1, (3, 2, 2, 1)).astype(np.float32)  # wespe-keras: PatchGAN maps
PATCH_FAKE = RNG.normal(0.5, 1, (2, 2, 2, 1)).astype(np.float32)
PATCH_FAKE_T = RNG.normal(0.5, 1, (2, 2, 2, 1)).astype(np.float32)


def _feature_net() -> keras.Model:
    """A fixed random conv net (3x3x5 + ReLU, 3x3x4 /2) in place of VGG-19."""
    init = keras.initializers.RandomNormal(stddev=0.5, seed=3)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", kernel_initializer=init)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", kernel_initializer=keras.initializers.RandomNormal(
        stddev=0.5, seed=4))(x)
    return keras.Model(inputs, x)


def _model(recipe: str) -> wespe.WESPE:
    cfg = wespe.WESPEConfig.from_train_config(
        TrainConfig(model="wespe", recipe=recipe, content="pixel", filters=4), patch_size=16)
    model = wespe.build(cfg)
    model.content = _feature_net()
    return model


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def _keras2_loss(fn, y_true, y_pred) -> float:
    """Keras 2 compile(): score_array = fn(y_true, y_pred) (reducing the last axis), mean over the
    remaining non-batch axes, times sample weights (ones), divided by the mean of weights != 0,
    then the mean over the batch (weighted_masked_objective)."""
    score = fn(y_true.astype(np.float64), y_pred.astype(np.float64))
    score = score.mean(axis=tuple(range(1, score.ndim))) if score.ndim > 1 else score
    weights = np.ones(y_pred.shape[0])
    score = score * weights / np.mean(weights != 0)
    return float(np.mean(score))


def _keras_mse(y_true, y_pred):  # keras.losses.mean_squared_error
    return np.mean(np.square(y_pred - y_true), axis=-1)


def _keras_mae(y_true, y_pred):  # keras.losses.mean_absolute_error
    return np.mean(np.abs(y_pred - y_true), axis=-1)


def _keras_total_variation(y_true, y_pred):  # loss_functions.py:110-121, a scalar
    x = y_pred
    rows, cols = x.shape[1], x.shape[2]
    a = np.square(x[:, :rows - 1, :cols - 1, :] - x[:, 1:, :cols - 1, :])
    b = np.square(x[:, :rows - 1, :cols - 1, :] - x[:, :rows - 1, 1:, :])
    return np.mean(a + b)


def _terms(model, color_fake, texture_fake) -> dict:
    images = {"fake_b": tf.constant(FAKE_B), "rec_a": tf.constant(REC_A), "rec_b": tf.constant(REC_B)}
    out = model._generator_terms(tf.constant(A), tf.constant(B), images, tf.constant(color_fake),
                                 tf.constant(texture_fake))
    return {k: float(v) for k, v in out.items()}


def _close(ours, expected):
    np.testing.assert_allclose(ours, expected, rtol=RTOL)


# --- paper ---------------------------------------------------------------------------------------

def _paper_expected(features) -> dict:
    """WESPE Sec. 3.1-3.5 over one batch."""
    fa, fr = features(A).numpy().astype(np.float64), features(REC_A).numpy().astype(np.float64)
    c, h, w = fa.shape[3], fa.shape[1], fa.shape[2]
    # Sec. 3.1: 1 / (C_j H_j W_j) ||psi(x) - psi(F(G(x)))||^2 per image, averaged over the batch
    content = np.mean([np.sum((fa[i] - fr[i]) ** 2) / (c * h * w) for i in range(len(A))])
    color = -np.sum(np.log(_sigmoid(LOGITS_FAKE)))      # Sec. 3.2: -sum_i log D_c(G(x_i)_b)
    texture = -np.sum(np.log(_sigmoid(LOGITS_FAKE[::-1])))  # Sec. 3.3, other D outputs
    x = FAKE_B.astype(np.float64)                       # Sec. 3.4 read as DPED train_model.py:91-95
    dy, dx = np.diff(x, axis=1), np.diff(x, axis=2)
    tv = 2 * (np.sum(dx ** 2) / 2 / dx[0].size + np.sum(dy ** 2) / 2 / dy[0].size) / len(x)
    total = content + 5e-3 * (color + texture) + 10 * tv   # Sec. 3.5
    return {"content": content, "color": color, "texture": texture, "tv": tv, "total": total}


def test_paper_generator_terms_and_total_parity():
    model = _model("paper")
    ours = _terms(model, LOGITS_FAKE, LOGITS_FAKE[::-1].copy())
    expected = _paper_expected(model.content)
    for term in ("content", "color", "texture", "tv"):
        _close(ours[f"{term}_loss"], expected[term])
    _close(ours["color_weighted"], 5e-3 * expected["color"])
    _close(ours["tv_weighted"], 10 * expected["tv"])
    _close(ours["g_loss"], expected["total"])
    assert "content_b_loss" not in ours  # the paper has one cycle


def test_paper_discriminator_parity():
    model = _model("paper")
    ours = float(model._d_term(tf.constant(LOGITS_REAL), True) + model._d_term(tf.constant(LOGITS_FAKE), False))
    # Standard GAN cross-entropy, summed over the batch as L_color is (not LSGAN)
    expected = -np.sum(np.log(_sigmoid(LOGITS_REAL))) - np.sum(np.log(1 - _sigmoid(LOGITS_FAKE)))
    _close(ours, expected)


def test_paper_blur_kernel_and_gray_parity():
    k = np.arange(21) - 10
    expected = 0.053 * np.exp(-(k[:, None] ** 2) / (2 * 3) - (k[None, :] ** 2) / (2 * 3))  # Sec. 3.2
    _close(wespe_losses.paper_blur_kernel(), expected)
    model = _model("paper")
    blur = model.color_discriminator.get_layer("color_discriminator_blur").get_weights()[0]
    _close(blur, np.repeat(expected[:, :, None, None], 3, axis=2))
    gray = model.texture_discriminator.get_layer("texture_discriminator_gray").get_weights()[0]
    # DPED's code grays with tf.image.rgb_to_grayscale (train_model.py:50-51)
    image = RNG.uniform(0, 1, (1, 4, 4, 3)).astype(np.float32)
    _close(np.tensordot(image, gray[0, 0], axes=1), tf.image.rgb_to_grayscale(image).numpy())


# --- wespe-keras ---------------------------------------------------------------------------------

def test_wespe_keras_generator_terms_and_total_parity():
    model = _model("wespe-keras")
    ours = _terms(model, PATCH_FAKE, PATCH_FAKE_T)
    fa, fra = model.content(A).numpy(), model.content(REC_A).numpy()
    fb, frb = model.content(B).numpy(), model.content(REC_B).numpy()
    valid = np.ones_like(PATCH_FAKE)  # modelwithVGGloss.py:346
    # combined.compile(loss=['mse', 'mse', 'mae', 'mae', total_variation], loss_weights=[0.5, 0.5, 1, 1, 0.5])
    # on outputs [valid_A_color, valid_A_texture, reconstr_A_vgg, reconstr_B_vgg, fake_B] (:154-161, :393)
    losses = [_keras2_loss(_keras_mse, valid, PATCH_FAKE), _keras2_loss(_keras_mse, valid, PATCH_FAKE_T),
              _keras2_loss(_keras_mae, fa, fra), _keras2_loss(_keras_mae, fb, frb),
              _keras2_loss(_keras_total_variation, A, FAKE_B)]
    weights = [0.5, 0.5, 1, 1, 0.5]
    names = ["color", "texture", "content", "content_b", "tv"]
    for name, loss, weight in zip(names, losses, weights):
        _close(ours[f"{name}_loss"], loss)
        _close(ours[f"{name}_weighted"], weight * loss)
    _close(ours["g_loss"], sum(w * loss for w, loss in zip(weights, losses)))


def test_wespe_keras_discriminator_parity():
    model = _model("wespe-keras")
    real = float(model._d_term(tf.constant(PATCH_REAL), True))
    fake = float(model._d_term(tf.constant(PATCH_FAKE), False))
    # D.compile(loss='mse', loss_weights=[0.5]); train_on_batch(imgs_B, valid), (fake_B, fake) (:107, 370-371)
    _close(real, 0.5 * _keras2_loss(_keras_mse, np.ones_like(PATCH_REAL), PATCH_REAL))
    _close(fake, 0.5 * _keras2_loss(_keras_mse, np.zeros_like(PATCH_FAKE), PATCH_FAKE))


def _source_gauss_kernel(kernlen=21, nsig=3, channels=1):  # preprocessing.py:22-31, as written
    interval = (2 * nsig + 1.) / (kernlen)
    x = np.linspace(-nsig - interval / 2., nsig + interval / 2., kernlen + 1)
    kern1d = np.diff(scipy.stats.norm.cdf(x))
    kernel_raw = np.sqrt(np.outer(kern1d, kern1d))
    kernel = kernel_raw / kernel_raw.sum()
    out_filter = np.array(kernel, dtype=np.float32)
    out_filter = out_filter.reshape((kernlen, kernlen, 1, 1))
    return np.repeat(out_filter, channels, axis=2)


def _same_zero_padded_blur(image, kernel):  # DepthwiseConv2D(k, padding='same'), one image
    r = kernel.shape[0] // 2
    padded = np.pad(image, ((r, r), (r, r), (0, 0)))
    out = np.zeros_like(image, dtype=np.float64)
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            out += kernel[i, j] * padded[i:i + image.shape[0], j:j + image.shape[1], :]
    return out


def test_wespe_keras_blur_kernel_gray_and_input_parity():
    source = _source_gauss_kernel(23, 3, 3)  # self.kernel_size=23, self.std=3 (:87-89)
    _close(wespe_losses.wespe_keras_blur_kernel(23, 3.0), source[:, :, 0, 0])
    model = _model("wespe-keras")
    color = model.color_discriminator
    _close(color.get_layer("color_discriminator_blur").get_weights()[0], source)
    gray = model.texture_discriminator.get_layer("texture_discriminator_gray").get_weights()[0]
    _close(gray, np.array([0.2989, 0.5870, 0.1140]).reshape(1, 1, 3, 1))  # :90
    # What the PatchGAN's first convolution sees: blur, then 2x - 1 (:246-262)
    seen = keras.Model(color.input, color.get_layer("to_tanh_range").output)(A[:1]).numpy()[0]
    _close(seen, 2.0 * _same_zero_padded_blur(A[0].astype(np.float64), source[:, :, 0, 0]) - 1.0)
    assert not color.get_layer("color_discriminator_blur").trainable


# --- whole forward passes: the right networks feed the right terms --------------------------------

@pytest.mark.parametrize("recipe", ["paper", "wespe-keras"])
def test_forward_pass_wiring_parity(recipe):
    model = _model(recipe)
    a, b = tf.constant(A), tf.constant(B)
    out = model.joint_losses(a, b) if recipe == "paper" else model.generator_losses(a, b)
    fake_b = model.generator(a).numpy()
    rec_a = model.inverse(fake_b).numpy()
    feats = model.content
    color, texture = model.color_discriminator(fake_b).numpy(), model.texture_discriminator(fake_b).numpy()
    if recipe == "paper":
        content = np.mean((feats(a).numpy() - feats(rec_a).numpy()) ** 2)
        adv = [-np.sum(np.log(_sigmoid(d))) for d in (color, texture)]
        real = model.color_discriminator(b).numpy()
        _close(float(out["d_color_loss"]), -np.sum(np.log(_sigmoid(real))) - np.sum(np.log(1 - _sigmoid(color))))
    else:
        rec_b = model.generator(model.inverse(b)).numpy()
        content = np.mean(np.abs(feats(a).numpy() - feats(rec_a).numpy()))
        _close(float(out["content_b_loss"]), np.mean(np.abs(feats(b).numpy() - feats(rec_b).numpy())))
        adv = [np.mean((d - 1.0) ** 2) for d in (color, texture)]
    _close(float(out["content_loss"]), content)
    _close([float(out["color_loss"]), float(out["texture_loss"])], adv)
