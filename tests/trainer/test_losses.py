import numpy as np
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
