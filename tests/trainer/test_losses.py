import numpy as np
import pytest
import tensorflow as tf

from phone2dslr.trainer import losses


def test_total_variation_zero_for_constant_positive_for_noise():
    assert float(losses.total_variation_loss(tf.fill([2, 16, 16, 3], 0.3))) == 0.0
    assert float(losses.total_variation_loss(tf.random.uniform([2, 16, 16, 3], seed=1))) > 0.05


def test_color_loss_ignores_high_frequency_noise_that_pixels_see():
    yy, xx = np.mgrid[0:48, 0:48]
    image = np.stack([0.5 + 0.3 * np.sin(xx / 9.0 + c) for c in range(3)], -1)[None].astype(np.float32)
    checker = 0.1 * np.where((yy + xx) % 2 == 0, 1.0, -1.0)[None, :, :, None].astype(np.float32)
    noisy = image + checker
    pixel = float(losses.content_loss(noisy, image))
    color = float(losses.color_loss(noisy, image))
    np.testing.assert_allclose(pixel, 0.01, rtol=1e-4)
    assert color < 1e-3 * pixel
    # while a colour shift shows in the colour loss at full strength
    assert float(losses.color_loss(image + 0.1, image)) > 0.3 * 0.01


def test_content_loss_is_normalised_by_size():
    a, b = tf.zeros([1, 8, 8, 4]), tf.ones([1, 8, 8, 4])
    assert float(losses.content_loss(a, b)) == 1.0
    assert float(losses.content_loss(tf.zeros([3, 32, 32, 64]), tf.ones([3, 32, 32, 64]))) == 1.0


def test_adversarial_losses():
    big = tf.fill([4, 1], 20.0)
    assert float(losses.gan_discriminator_loss(big, -big)) < 1e-6
    np.testing.assert_allclose(float(losses.gan_generator_loss(tf.zeros([4, 1]))), np.log(2.0), rtol=1e-6)
    assert float(losses.discriminator_accuracy(big, -big)) == 1.0
    assert float(losses.discriminator_accuracy(-big, big)) == 0.0
    ones, zeros = tf.ones([2, 3, 3, 1]), tf.zeros([2, 3, 3, 1])
    assert float(losses.lsgan_discriminator_loss(ones, zeros)) == 0.0
    assert float(losses.lsgan_discriminator_loss(zeros, ones)) == 1.0
    assert float(losses.lsgan_generator_loss(ones)) == 0.0
    assert float(losses.lsgan_generator_loss(zeros)) == 1.0


# --- DPED's per-source forms (their parity with the sources: test_dped_parity.py) -----------------

def test_dped_color_forms_scale_as_their_sources():
    # a uniform shift c under an identity blur: the per-image sum is H*W*C*c^2 (15,000x a mean on
    # DPED's 100x100x3 patches, which is why the official colour weight is 0.5, not 500)
    from phone2dslr.trainer import dped_losses

    x, c, identity = tf.random.uniform([2, 8, 8, 3], seed=3), 0.1, np.ones([1, 1], np.float32)
    pixels = 8 * 8 * 3
    for form, expected in (("half-sum", pixels * c ** 2 / 2), ("sum", pixels * c ** 2), ("255-mean", 255 * c ** 2)):
        np.testing.assert_allclose(float(dped_losses.color_loss(x + c, x, identity, form)), expected, rtol=1e-4)


def test_dped_tv_forms_and_unknown_forms():
    from phone2dslr.trainer import dped_losses

    ramp = tf.tile(tf.reshape(tf.range(6, dtype=tf.float32) * 0.1, [1, 1, 6, 1]), [2, 4, 1, 3])  # dx = 0.1
    np.testing.assert_allclose(float(dped_losses.tv_loss(ramp, "l2-mean")), 0.01, rtol=1e-5)
    np.testing.assert_allclose(float(dped_losses.tv_loss(ramp, "l1-sum")), 4 * 5 * 3 * 0.1, rtol=1e-5)
    with pytest.raises(dped_losses.LossFormError, match="not one of"):
        dped_losses.tv_loss(ramp, "l3")
    with pytest.raises(ValueError, match="colour loss form"):
        dped_losses.color_loss(ramp, ramp, np.ones([1, 1], np.float32), "median")
    with pytest.raises(dped_losses.LossFormError, match="texture"):
        dped_losses.LossForms(color="sum", tv="l2-mean", texture="hinge", blur="gaussian")


def test_official_accuracy_and_texture_signs():
    from phone2dslr.trainer import dped_losses

    p = tf.constant([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])  # columns: real, fake
    swaps = tf.constant([1.0, 0.0, 0.0])  # shown: DSLR, enhanced, enhanced
    assert float(dped_losses.official_accuracy(p, swaps)) == pytest.approx(2 / 3)
    # the generator minimises sum log p(fake): lower when D calls its images real
    assert float(dped_losses.official_texture_loss(p[:1])) < float(dped_losses.official_texture_loss(p[1:2]))
