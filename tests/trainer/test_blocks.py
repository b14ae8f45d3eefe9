import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer import blocks
from phone2dslr.trainer.dped import build_discriminator, build_generator
from phone2dslr.trainer.wespe import build_patch_discriminator


def test_gaussian_kernel_is_normalised_symmetric_and_peaked():
    k = blocks.gaussian_kernel(21, 3.0)
    assert k.shape == (21, 21)
    np.testing.assert_allclose(k.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(k, k.T)
    np.testing.assert_allclose(k, k[::-1, ::-1])
    assert k.argmax() == 10 * 21 + 10


def test_blur_is_per_channel_fixed_and_keeps_shape():
    x = tf.random.uniform([2, 24, 24, 3])
    y = blocks.gaussian_blur(x)
    assert y.shape == x.shape
    # per channel: blurring one channel alone gives the same result
    np.testing.assert_allclose(blocks.gaussian_blur(x[..., 1:2])[..., 0], y[..., 1], atol=1e-6)
    # a constant interior stays constant (zero padding only touches the 10-pixel border)
    c = blocks.gaussian_blur(tf.fill([1, 40, 40, 3], 0.5))
    np.testing.assert_allclose(c[0, 10:30, 10:30], 0.5, atol=1e-5)


def test_gray_uses_bt601_weights():
    x = tf.constant([[[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]])
    np.testing.assert_allclose(blocks.rgb_to_gray(x)[0, 0, :, 0], [0.299, 0.587, 0.114], atol=2e-3)


def test_random_dihedral_transforms_pair_identically():
    keras.utils.set_random_seed(1)
    x = tf.random.uniform([8, 6, 6, 3])
    a, b = blocks.random_dihedral(x, x[..., :1] * 2)
    np.testing.assert_allclose(a[..., :1] * 2, b)
    for i in range(8):  # each output is one of the 8 symmetries of its input
        cands = [np.rot90(f, k) for f in (x[i].numpy(), x[i].numpy()[:, ::-1]) for k in range(4)]
        assert any(np.allclose(a[i], c) for c in cands)
    (r,) = blocks.random_dihedral(tf.random.uniform([4, 5, 7, 3]))  # non-square: flips only
    assert r.shape == (4, 5, 7, 3)


def test_receptive_field_of_dped_generator_is_analytic():
    # 9x9 conv: +8; 4 residual blocks x 2 3x3 convs: +16; 2 more 3x3: +4; 9x9: +8; 1x1 head: +0
    assert blocks.receptive_field(build_generator(4, "conv1x1")) == 1 + 8 + 8 * 2 + 2 * 2 + 8 == 37
    assert blocks.receptive_field(build_generator(4, "tanh")) == 37
    assert blocks.receptive_field(build_generator(4, num_blocks=2)) == 1 + 8 + 4 * 2 + 2 * 2 + 8
    assert blocks.output_stride(build_generator(4)) == 1


def test_receptive_field_strides_dilation_pooling_and_nesting():
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3, strides=2, padding="same")(inp)  # rf 3, jump 2
    x = keras.layers.Conv2D(2, 3, dilation_rate=2, padding="same")(x)  # k_eff 5: +4*2 -> 11
    x = keras.layers.MaxPooling2D(2)(x)  # +1*2 -> 13, jump 4
    inner = keras.Model(inp, x)
    outer_in = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(1, 3, padding="same")(inner(outer_in))  # +2*4 -> 21
    outer = keras.Model(outer_in, y)
    assert blocks.receptive_field(inner) == 13
    assert blocks.receptive_field(outer) == 21
    assert blocks.output_stride(outer) == 4  # 2 (conv) * 2 (pool)
    # PatchGAN: 4x4 convs, strides 2,2,2,1,1 -> 1+3+6+12+24+24 = 70 (the pix2pix 70x70 PatchGAN)
    assert blocks.receptive_field(build_patch_discriminator(3, 2, 3)) == 70


def test_receptive_field_refuses_global_layers():
    with pytest.raises(ValueError, match="mixes all positions"):
        blocks.receptive_field(build_discriminator(32))


def test_dped_code_kernel_is_the_square_root_construction_not_a_sigma_3_gaussian():
    k = blocks.dped_code_kernel(21, 3.0)
    np.testing.assert_allclose(k.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(k, k.T)
    # separable: sqrt(outer(a, a)) = outer(sqrt(a), sqrt(a)), so rank one
    assert np.linalg.matrix_rank(k.astype(np.float64), tol=1e-9) == 1
    # one pixel is 19/63 standard units; sqrt widens by sqrt(2): 4.69 px, 4.34 px as cut to 21 taps
    assert blocks.kernel_std(k) == pytest.approx(4.337, abs=1e-3)
    s = blocks.sampled_gaussian_kernel(21, 3.0)
    np.testing.assert_allclose(s.sum(), 1.0, rtol=1e-6)
    assert blocks.kernel_std(s) == pytest.approx(3.0, abs=0.05)
    assert blocks.kernel_std(blocks.sampled_gaussian_kernel(41, 3.0)) == pytest.approx(3.0, abs=1e-3)


def test_blur_takes_a_given_kernel():
    x = tf.random.uniform([1, 24, 24, 2], seed=4)
    np.testing.assert_allclose(blocks.gaussian_blur(x, kernel=blocks.gaussian_kernel(21, 3.0)),
                               blocks.gaussian_blur(x), atol=1e-7)
    delta = np.zeros([3, 3], np.float32)
    delta[1, 1] = 1.0
    np.testing.assert_allclose(blocks.gaussian_blur(x, kernel=delta), x, atol=1e-7)


@pytest.mark.parametrize("norm,cls", [("none", None), ("batch", "BatchNormalization"),
                                      ("instance", "InstanceNormalization")])
def test_residual_block_norms(norm, cls):
    inp = keras.Input((None, None, 4))
    model = keras.Model(inp, blocks.residual_block(inp, 4, norm=norm))
    names = [type(layer).__name__ for layer in model.layers]
    assert names.count(cls) == (2 if cls else 0)
    assert model(tf.ones([1, 5, 5, 4])).shape == (1, 5, 5, 4)
    with pytest.raises(ValueError, match="normalization"):
        blocks.residual_block(inp, 4, norm="layer")


def test_receptive_field_refuses_instance_normalized_generators():
    from phone2dslr.trainer.dped_networks import build_official_generator

    with pytest.raises(ValueError, match="mixes all positions"):
        blocks.receptive_field(build_official_generator(4))
