import importlib

import numpy as np
import tensorflow as tf

from phone2dslr.trainer import metrics


def test_psnr_ssim_agree_with_tf_image():
    a = tf.random.uniform([3, 24, 24, 3], seed=1)
    b = tf.clip_by_value(a + tf.random.normal([3, 24, 24, 3], stddev=0.1, seed=2), 0, 1)
    np.testing.assert_allclose(metrics.psnr(a, b), tf.image.psnr(a, b, max_val=1.0), rtol=1e-6)
    np.testing.assert_allclose(metrics.ssim(a, b), tf.image.ssim(a, b, max_val=1.0), rtol=1e-6)
    assert metrics.psnr(a, b).shape == (3,)


def test_identical_images_give_inf_psnr_and_unit_ssim():
    a = tf.random.uniform([2, 16, 16, 3], seed=3)
    assert np.all(np.isinf(metrics.psnr(a, a)))
    np.testing.assert_allclose(metrics.ssim(a, a), 1.0, rtol=1e-6)


def test_keras_metric_classes_average_per_example_values_and_rebuild_from_config():
    a = tf.random.uniform([4, 16, 16, 3], seed=4)
    b = tf.clip_by_value(a + 0.05, 0, 1)
    for cls, fn in ((metrics.PSNR, metrics.psnr), (metrics.SSIM, metrics.ssim)):
        m = cls()
        m.update_state(a[:2], b[:2])
        m.update_state(a[2:], b[2:])
        np.testing.assert_allclose(m.result(), np.mean(fn(a, b)), rtol=1e-5)
        # TFMA rebuilds it from class_name + module + config
        rebuilt = getattr(importlib.import_module("phone2dslr.trainer.metrics"), cls.__name__).from_config(m.get_config())
        assert rebuilt.name == m.name and rebuilt.name in ("psnr", "ssim")
        assert isinstance(rebuilt, tf.keras.metrics.Mean)  # tf_keras (TF_USE_LEGACY_KERAS=1)
