"""trainer/metrics.py against NumPy restatements of its sources, and TFMA's merge protocol.

Pooled PSNR is restated from DPED's train_model.py:101-106 (sum of squared errors over the
values, 20 log10(1 / sqrt(mse))); MS-SSIM from Wang, Simoncelli and Bovik 2003 with the
conventions tf.image.ssim_multiscale documents (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
valid filtering, 2x2 average downsampling of an edge-padded image, contrast-structure terms at the
finer scales and full SSIM at the coarsest, per channel then averaged), with this project's scale
rule written out again here: as many scales as keep the coarsest side >= 11 px, exponents
truncated and renormalised.
"""
import importlib

import numpy as np
import pytest
import tensorflow as tf

from phone2dslr.trainer import metrics

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])  # Wang et al. 2003, Table 1 / eq. 7


def _pair(shape, seed, noise=0.1):
    rng = np.random.default_rng(seed)
    coarse = rng.random([shape[0], shape[1] // 4 + 2, shape[2] // 4 + 2, 3])
    a = np.clip(tf.image.resize(coarse, shape[1:3], method="bicubic").numpy(), 0, 1).astype(np.float32)
    b = np.clip(a * 0.9 + 0.05 + rng.normal(0, noise, a.shape), 0, 1).astype(np.float32)
    return a, b


def _np_pooled_psnr(targets, images):
    """DPED: loss_mse = sum((dslr - enhanced)^2) / (values); psnr = 20 log10(1 / sqrt(loss_mse))."""
    sq = sum(float(np.sum((np.float64(t) - np.float64(x)) ** 2)) for t, x in zip(targets, images))
    values = sum(np.asarray(t).size for t in targets)
    return 20.0 * np.log10(1.0 / np.sqrt(sq / values))


def _np_scales(side):
    return sum(1 for k in range(5) if -(-side // 2 ** k) >= 11)


def _np_gauss(size=11, sigma=1.5):
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _np_filter(img, w):  # valid 2-D correlation of [H, W]
    k = w.shape[0]
    h, wd = img.shape[0] - k + 1, img.shape[1] - k + 1
    out = np.zeros([h, wd])
    for i in range(k):
        for j in range(k):
            out += w[i, j] * img[i:i + h, j:j + wd]
    return out


def _np_ssim_cs(x, y):
    w, c1, c2 = _np_gauss(), 0.01 ** 2, 0.03 ** 2
    mx, my = _np_filter(x, w), _np_filter(y, w)
    sxx, syy, sxy = _np_filter(x * x, w) - mx ** 2, _np_filter(y * y, w) - my ** 2, _np_filter(x * y, w) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def _np_down(x):
    x = np.pad(x, [(0, x.shape[0] % 2), (0, x.shape[1] % 2)], mode="edge")
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def _np_ms_ssim(a, b):
    """One image pair [H, W, C] in [0, 1] -> MS-SSIM with the truncated, renormalised exponents."""
    n = _np_scales(min(a.shape[:2]))
    weights = WEIGHTS if n == 5 else WEIGHTS[:n] / WEIGHTS[:n].sum()
    per_channel = []
    for c in range(a.shape[-1]):
        x, y, value = np.float64(a[..., c]), np.float64(b[..., c]), 1.0
        for k in range(n):
            s, cs = _np_ssim_cs(x, y)
            value *= max(s if k == n - 1 else cs, 0.0) ** weights[k]
            x, y = _np_down(x), _np_down(y)
        per_channel.append(value)
    return float(np.mean(per_channel))


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
    np.testing.assert_allclose(metrics.ms_ssim(a, a), 1.0, rtol=1e-6)
    pooled = metrics.PooledPSNR()
    pooled.update_state(a, a)
    assert np.isinf(pooled.result())


@pytest.mark.parametrize("side", [11, 20, 21, 40, 41, 50, 80, 81, 100, 160, 161, 512])
def test_ms_ssim_scale_rule(side):
    assert metrics.ms_ssim_scales(side, side + 7) == _np_scales(side)
    assert metrics.ms_ssim_scales(side, side) == {11: 1, 20: 1, 21: 2, 40: 2, 41: 3, 50: 3, 80: 3, 81: 4,
                                                  100: 4, 160: 4, 161: 5, 512: 5}[side]
    factors = metrics.ms_ssim_power_factors(_np_scales(side))
    assert sum(factors) == pytest.approx(1.0, abs=2e-4)  # the standard five sum to 0.9999


def test_power_factors_are_the_standard_ones_truncated_and_renormalised():
    np.testing.assert_allclose(metrics.ms_ssim_power_factors(5), WEIGHTS)
    np.testing.assert_allclose(metrics.ms_ssim_power_factors(4), WEIGHTS[:4] / 0.8668, rtol=1e-6)
    np.testing.assert_allclose(metrics.ms_ssim_power_factors(3), [0.0711, 0.4530, 0.4760], atol=1e-4)
    with pytest.raises(ValueError, match="1 to 5 scales"):
        metrics.ms_ssim_power_factors(0)


@pytest.mark.parametrize("shape", [(2, 50, 50), (2, 23, 37), (1, 100, 100), (1, 16, 16)])
def test_ms_ssim_matches_numpy_restatement(shape):
    a, b = _pair(shape, seed=sum(shape))
    expected = [_np_ms_ssim(a[i], b[i]) for i in range(shape[0])]
    np.testing.assert_allclose(metrics.ms_ssim(a, b), expected, rtol=2e-4, atol=2e-5)


def test_one_scale_ms_ssim_is_ssim_and_unknown_sizes_pick_scales_at_run_time():
    a, b = _pair((2, 16, 16), seed=7, noise=0.02)
    np.testing.assert_allclose(metrics.ms_ssim(a, b), metrics.ssim(a, b), rtol=1e-5)
    traced = tf.function(metrics.ms_ssim, input_signature=[tf.TensorSpec([None, None, None, 3])] * 2)
    for side in (16, 50, 100):
        x, y = _pair((2, side, side), seed=side)
        np.testing.assert_allclose(traced(x, y), metrics.ms_ssim(x, y), rtol=1e-5)


def test_too_small_images_are_a_clear_error():
    a = np.zeros([1, 10, 40, 3], np.float32)
    with pytest.raises(metrics.ImageTooSmallError, match="at least 11x11 px, got 10x40"):
        metrics.ms_ssim(a, a)
    traced = tf.function(metrics.ms_ssim, input_signature=[tf.TensorSpec([None, None, None, 3])] * 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least 11 px"):
        traced(a, a)


def _stacked(enhanced, phone):
    return np.concatenate([enhanced, phone], axis=-1)


def _tfma_merge(cls, batches):
    """What TFMA 0.52 does (metrics/tf_metric_wrapper.py, _CompilableMetricsCombiner): per batch
    reset_states + update_state + get_weights, the weights added element-wise, then set_weights on
    a metric rebuilt from its class and config, and result()."""
    metric, total = cls(), None
    for y_true, y_pred in batches:
        metric.reset_states()
        metric.update_state(y_true, y_pred)
        weights = metric.get_weights()
        total = weights if total is None else [np.add(t, w) for t, w in zip(total, weights)]
    rebuilt = getattr(importlib.import_module("phone2dslr.trainer.metrics"), cls.__name__).from_config(
        metric.get_config())
    rebuilt.set_weights(total)
    return float(rebuilt.result())


def test_tfma_merge_gives_the_whole_split_for_every_class():
    dslr, phone = _pair((5, 48, 40), seed=11)
    enhanced = np.clip(dslr + np.random.default_rng(12).normal(0, 0.03, dslr.shape), 0, 1).astype(np.float32)
    enhanced[4] = 1.0 - dslr[4]  # one very bad image: pooled and per-image PSNR part ways
    stacked = _stacked(enhanced, phone)
    split = [(dslr[:2], stacked[:2]), (dslr[2:3], stacked[2:3]), (dslr[3:], stacked[3:])]
    own = [(t, p[..., :3]) for t, p in split]

    pooled = _np_pooled_psnr(dslr, enhanced)
    pooled_input = _np_pooled_psnr(dslr, phone)
    mean_psnr = np.mean([20 * np.log10(1 / np.sqrt(np.mean((np.float64(t) - x) ** 2))) for t, x in zip(dslr, enhanced)])
    ms = np.mean([_np_ms_ssim(enhanced[i], dslr[i]) for i in range(5)])
    ms_input = np.mean([_np_ms_ssim(phone[i], dslr[i]) for i in range(5)])
    expected = {
        metrics.PooledPSNR: (own, pooled), metrics.InputPooledPSNR: (split, pooled_input),
        metrics.PooledPSNRGain: (split, pooled - pooled_input), metrics.PSNR: (own, mean_psnr),
        metrics.SSIM: (own, float(np.mean(metrics.ssim(enhanced, dslr)))),
        metrics.MSSSIM: (own, ms), metrics.InputMSSSIM: (split, ms_input), metrics.MSSSIMGain: (split, ms - ms_input),
    }
    for cls, (batches, value) in expected.items():
        assert _tfma_merge(cls, batches) == pytest.approx(value, rel=1e-4, abs=1e-4), cls.__name__
    assert mean_psnr > pooled + 1.0  # the premise: the two PSNRs differ on this split


def test_metric_classes_reset_rebuild_and_weight_examples():
    dslr, enhanced = _pair((4, 24, 24), seed=13)
    pooled = metrics.PooledPSNR()
    pooled.update_state(dslr, enhanced)
    pooled.reset_state()
    assert np.isnan(pooled.result())  # nothing seen: no PSNR, not 0 dB
    assert [float(w) for w in pooled.get_weights()] == [0.0, 0.0]
    pooled.update_state(dslr, enhanced, sample_weight=np.array([1.0, 1.0, 0.0, 2.0]))
    weighted = [dslr[0], dslr[1], dslr[3], dslr[3]], [enhanced[0], enhanced[1], enhanced[3], enhanced[3]]
    assert float(pooled.result()) == pytest.approx(_np_pooled_psnr(*weighted), rel=1e-6)
    for cls, name in ((metrics.PSNR, "psnr"), (metrics.SSIM, "ssim"), (metrics.PooledPSNR, "psnr_pooled"),
                      (metrics.MSSSIM, "ms_ssim"), (metrics.InputPooledPSNR, "psnr_pooled_input"),
                      (metrics.InputMSSSIM, "ms_ssim_input"), (metrics.PooledPSNRGain, "psnr_pooled_gain"),
                      (metrics.MSSSIMGain, "ms_ssim_gain")):
        rebuilt = cls.from_config(cls().get_config())
        assert rebuilt.name == name and isinstance(rebuilt, tf.keras.metrics.Metric)  # tf_keras


def test_validation_metrics_name_what_test_step_logs():
    assert list(metrics.VALIDATION_METRICS) == ["psnr", "psnr_pooled", "ssim", "ms_ssim"]
    assert metrics.VALIDATION_METRICS["psnr_pooled"] is metrics.PooledPSNR


def test_test_step_logs_each_metric_over_the_whole_validation_set_of_any_size():
    """EnhancementGAN.test_step: pooled PSNR over all batches (not a mean of batch values), and
    MS-SSIM scales chosen per batch when the dataset leaves H and W unknown (32 px: 2, 48 px: 3)."""
    import tf_keras as keras

    from phone2dslr.trainer.gan import EnhancementGAN

    image = keras.Input([None, None, 3])
    model = EnhancementGAN(keras.Model(image, keras.layers.Lambda(lambda x: x * 0.8 + 0.1)(image)))
    model.compile()
    batches = [dict(zip(("dslr", "phone"), _pair((2, side, side), seed=side))) for side in (32, 48)]
    spec = {k: tf.TensorSpec([None, None, None, 3], tf.float32) for k in ("phone", "dslr")}
    data = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec)
    logs = model.evaluate(data, verbose=0, return_dict=True)

    dslr = [x for b in batches for x in b["dslr"]]
    phone = [x for b in batches for x in b["phone"]]
    enhanced = [np.clip(x * 0.8 + 0.1, 0, 1) for x in phone]
    assert logs["psnr_pooled"] == pytest.approx(_np_pooled_psnr(dslr, enhanced), rel=1e-5)
    assert logs["psnr_pooled_input"] == pytest.approx(_np_pooled_psnr(dslr, phone), rel=1e-5)
    assert logs["ms_ssim_input"] == pytest.approx(np.mean([_np_ms_ssim(p, d) for p, d in zip(phone, dslr)]),
                                                  rel=2e-4)
    assert set(logs) == set(EnhancementGAN.EVAL_NAMES)
