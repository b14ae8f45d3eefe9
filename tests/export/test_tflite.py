"""TFLite export for real: a tiny generator saved like the Trainer saves it, four variants, LiteRT.

The SavedModel is written by export/saved_model.py itself, so its `enhance_image` signature (input
`image` float32 [1, None, None, 3], output `enhanced`, clipped to [0, 1]) is the Trainer's.
"""
import json
import os

import numpy as np
import pytest

import phone2dslr    # noqa: F401  (Keras/TF environment first)
import tensorflow as tf
import tf_keras as keras

from phone2dslr.export import tflite_checks, tflite_convert, tflite_runtime
from phone2dslr.trainer.serving import export_image_generator

BOUNDS = {"float32": 45.0, "float16": 40.0, "dynamic_int8": 20.0, "int8": 15.0, "fixed": 40.0}
RESIZABLE = tuple(v for v in tflite_convert.VARIANTS if v != "fixed")
FIXED_TILE = 24  # the tiny generator's radius is 3: tiles of 24 overlap by 6


def tiny_generator(seed: int = 0, filters: int = 16) -> keras.Model:
    """A few convolutions over any-size input with a residual to the input, like the real ones.

    16 filters so the 3x3 kernels (2304 weights) pass the converter's 1024-element threshold and
    the dynamic-range variant really quantizes them.
    """
    keras.utils.set_random_seed(seed)
    image = keras.Input([None, None, 3], name="image")
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(stddev=0.02))(x)
    return keras.Model(image, keras.layers.Add()([image, x]), name="tiny_generator")


def save_generator(generator: keras.Model, export_dir: str) -> str:
    """Save with the project's own exporter (the image signatures the Trainer writes; the
    tf.Example ones need a Transform graph, which TFLite conversion never touches)."""
    export_image_generator(generator, export_dir)
    return export_dir


def smooth_images(n: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    """Photo-like (low-frequency) float images [1, H, W, 3] in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = rng.random([n, height // 4 + 1, width // 4 + 1, 3]).astype(np.float32)
    up = tf.image.resize(coarse, [height, width], method="bicubic").numpy()
    return [np.clip(x, 0.0, 1.0)[np.newaxis] for x in up]


def dslr_like(phone: np.ndarray) -> np.ndarray:
    return np.clip(phone * 1.1 + 0.03, 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> str:
    return save_generator(tiny_generator(0), str(tmp_path_factory.mktemp("model") / "serving"))


@pytest.fixture(scope="module")
def eval_images() -> list[tflite_checks.EvalImage]:
    phones = smooth_images(3, 32, 40, seed=1)
    return [tflite_checks.EvalImage(p, dslr_like(p) if i < 2 else None) for i, p in enumerate(phones)]


@pytest.fixture(scope="module")
def references(saved_model, eval_images) -> list[np.ndarray]:
    enhancer = tflite_convert.SavedModelEnhancer(saved_model)
    return [enhancer(i.phone) for i in eval_images]


@pytest.fixture(scope="module")
def converted(saved_model) -> dict[str, bytes]:
    representative = smooth_images(4, 24, 32, seed=2)
    return {v: tflite_convert.convert(saved_model, v, representative, fixed_tile=FIXED_TILE)
            for v in tflite_convert.VARIANTS}


@pytest.mark.parametrize("variant", RESIZABLE)
def test_every_variant_takes_two_input_sizes(converted, variant):
    tflite_runtime.check_resizable(converted[variant])  # raises if not
    for h, w in [(20, 28), (33, 17)]:
        out = tflite_runtime.run_tflite(converted[variant], np.full([h, w, 3], 0.4, np.float32))
        assert out.shape == (1, h, w, 3) and out.dtype == np.float32
    assert tflite_runtime.TFLiteRunner(converted[variant]).input_details["dtype"] == np.float32  # float contract


def test_float32_matches_the_saved_model(converted, eval_images, references):
    result = tflite_checks.evaluate_variant("float32", converted["float32"], references, eval_images,
                                            BOUNDS["float32"], latency_size=(16, 16), latency_runs=2)
    assert result.passed, result.reason
    assert result.parity_psnr > 45.0 and result.parity_max_abs < 1e-3
    assert None not in (result.psnr, result.psnr_pooled, result.ssim, result.ms_ssim)  # two paired images
    assert result.latency_ms > 0 and result.input_size == [16, 16]
    assert result.input_shape_signature == [1, -1, -1, 3]


def test_a_different_network_fails_parity(eval_images, references):
    other = tiny_generator(seed=7)
    converter = tf.lite.TFLiteConverter.from_keras_model(other)
    result = tflite_checks.evaluate_variant("float32", converter.convert(), references, eval_images,
                                            BOUNDS["float32"], latency_size=(16, 16), latency_runs=1)
    assert not result.passed
    assert "below the bound" in result.reason and result.parity_psnr < 45.0


def test_nan_weights_fail_with_a_clear_reason(eval_images, references):
    broken = tiny_generator(seed=0)
    broken.set_weights([np.full_like(w, np.nan) for w in broken.get_weights()])
    content = tf.lite.TFLiteConverter.from_keras_model(broken).convert()
    result = tflite_checks.evaluate_variant("float32", content, references, eval_images, BOUNDS["float32"])
    assert not result.passed and "NaN" in result.reason


def test_a_fixed_size_model_is_not_resizable():
    image = keras.Input([32, 32, 3], batch_size=1)
    fixed = keras.Model(image, keras.layers.Reshape([32, 32, 3])(keras.layers.Flatten()(image)))
    content = tf.lite.TFLiteConverter.from_keras_model(fixed).convert()
    with pytest.raises(tflite_convert.TFLiteExportError, match="cannot be resized"):
        tflite_runtime.check_resizable(content)


def test_int8_needs_representative_images(saved_model):
    with pytest.raises(tflite_convert.TFLiteExportError, match="representative"):
        tflite_convert.convert(saved_model, "int8", [])


def test_export_writes_passed_models_and_results(saved_model, eval_images, tmp_path):
    bounds = dict(BOUNDS, float16=200.0)  # impossible bound: float16 must be failed, not shipped
    report = tflite_checks.export_variants(saved_model, str(tmp_path), eval_images, smooth_images(2, 24, 32, seed=3),
                                           bounds, latency_size=(16, 16), latency_runs=1, fixed_tile=FIXED_TILE)
    on_disk = json.loads((tmp_path / tflite_checks.RESULTS_FILE).read_text())
    assert on_disk["shipped"] == report["shipped"] == ["float32", "dynamic_int8", "int8", "fixed"]
    f16 = on_disk["variants"]["float16"]
    assert not f16["passed"] and "below the bound 200.00" in f16["reason"] and f16["file"] is None
    assert (tmp_path / "rejected" / "float16.tflite").exists() and not (tmp_path / "float16.tflite").exists()
    for variant in report["shipped"]:
        entry = on_disk["variants"][variant]
        assert entry["file"] == f"{variant}.tflite"
        assert entry["size_bytes"] == os.path.getsize(tmp_path / entry["file"])
        for key in ("parity_max_abs", "parity_psnr", "psnr", "psnr_pooled", "ssim", "ms_ssim", "latency_ms",
                    "input_size"):
            assert entry[key] is not None, (variant, key)
    assert on_disk["variants"]["float16"]["size_bytes"] < on_disk["variants"]["float32"]["size_bytes"]
    fixed = on_disk["variants"]["fixed"]
    assert fixed["fixed_size"] == [FIXED_TILE, FIXED_TILE] and fixed["input_size"] == [FIXED_TILE, FIXED_TILE]
    assert fixed["resize_checked"] == [] and fixed["checked_images"] == 3 and on_disk["fixed_tile"] == FIXED_TILE
    assert on_disk["eval_images"] == 3 and on_disk["paired_eval_images"] == 2
    for model in ("saved_model", "phone_input"):
        assert set(on_disk["reference"][model]) == {"psnr", "psnr_pooled", "ssim", "ms_ssim"}
    assert on_disk["reference"]["saved_model"]["psnr"] > 0
    float32_parity = on_disk["variants"]["float32"]["parity_psnr"]
    assert float(float32_parity) > 45.0  # "inf" when bit-identical


def test_quality_gate_fails_variants_that_do_not_beat_the_phone_input(eval_images, tmp_path):
    """A generator that inverts colours is worse than its input: with the Evaluator's gate nothing ships."""
    inputs = keras.Input((None, None, 3))
    invert = keras.layers.Conv2D(3, 1, kernel_initializer=keras.initializers.Constant(-np.eye(3)[None, None]),
                                 bias_initializer="ones")
    saved_model = save_generator(keras.Model(inputs, invert(inputs)), str(tmp_path / "invert"))
    variants = ("float32", "dynamic_int8")
    open_gate = tflite_checks.export_variants(saved_model, str(tmp_path / "open"), eval_images, None, BOUNDS,
                                              variants=variants, latency_size=(16, 16), latency_runs=1,
                                              min_psnr_gain=-100.0)
    assert open_gate["shipped"] == list(variants)
    gated = tflite_checks.export_variants(saved_model, str(tmp_path / "gated"), eval_images, None, BOUNDS,
                                          variants=variants, latency_size=(16, 16), latency_runs=1,
                                          min_psnr_gain=0.0)
    phone_psnr = gated["reference"]["phone_input"]["psnr"]
    for variant in variants:
        entry = gated["variants"][variant]
        assert entry["psnr"] < phone_psnr  # the premise: this model makes images worse
        assert not entry["passed"] and "does not beat the phone input" in entry["reason"]
        assert (tmp_path / "gated" / "rejected" / f"{variant}.tflite").exists()
    assert gated["shipped"] == []


def test_quality_pools_psnr_over_every_pixel_and_averages_the_rest():
    """psnr_pooled restated from DPED (train_model.py:101-106): one MSE over all values of all images,
    so a larger image weighs more; psnr / ssim / ms_ssim are plain means over the images."""
    rng = np.random.default_rng(4)
    targets = smooth_images(1, 16, 16, seed=8) + smooth_images(1, 40, 48, seed=9)
    outputs = [np.clip(t + rng.normal(0, s, t.shape), 0, 1).astype(np.float32) for t, s in zip(targets, (0.2, 0.01))]
    q = tflite_checks.quality(outputs, targets)
    squared = sum(float(np.sum((np.float64(o) - t) ** 2)) for o, t in zip(outputs, targets))
    values = sum(t.size for t in targets)
    assert q["psnr_pooled"] == pytest.approx(20 * np.log10(1 / np.sqrt(squared / values)), rel=1e-6)
    per_image = [10 * np.log10(1 / np.mean((np.float64(o) - t) ** 2)) for o, t in zip(outputs, targets)]
    assert q["psnr"] == pytest.approx(np.mean(per_image), rel=1e-5)
    assert q["ms_ssim"] == pytest.approx(np.mean([tflite_checks.ms_ssim(o, t) for o, t in zip(outputs, targets)]))
    assert 0 < q["ssim"] < 1 and 0 < q["ms_ssim"] < 1
    tiny = tflite_checks.quality([outputs[0][:, :8, :8]], [targets[0][:, :8, :8]])
    assert tiny["ssim"] is None and tiny["ms_ssim"] is None and tiny["psnr_pooled"] is not None
    assert tflite_checks.quality([], []) == dict.fromkeys(tflite_checks.QUALITY_KEYS)


def _inf(value) -> float:
    return float(value)  # tflite_results.json writes +inf as "inf"


def test_results_say_which_variants_tile_exactly_and_run_on_the_gpu(saved_model, eval_images, tmp_path):
    """Issue 12, items 4 and 6: each variant's tiled-vs-whole PSNR, measured on itself, and the GPU verdict.

    Float kernels and full-integer int8 (fixed ranges) tile exactly; dynamic-range int8 quantizes each
    tile's activations with that tile's own ranges, so its tiles differ from the whole-image run."""
    report = tflite_checks.export_variants(saved_model, str(tmp_path), eval_images, smooth_images(2, 24, 32, seed=3),
                                           BOUNDS, latency_size=(16, 16), latency_runs=1, fixed_tile=FIXED_TILE)
    variants = json.loads((tmp_path / tflite_checks.RESULTS_FILE).read_text())["variants"]
    assert report["shipped"] == list(tflite_convert.VARIANTS)
    for name, entry in variants.items():
        assert entry["receptive_field_radius"] == 3, name
        assert entry["metadata"] is True, name
        assert entry["gpu_analyzer"] == "compatible", name  # convolutions, ReLU, ADD only
        if name == "fixed":
            assert entry["gpu_compatible"] is True and entry["gpu_issues"] == []
            assert entry["tiling_check_tile"] == [FIXED_TILE, FIXED_TILE]
        else:  # any-size inputs: the delegate needs the app to fix the size first
            assert entry["gpu_compatible"] is False and "dynamic" in entry["gpu_issues"][0]
            assert entry["tiling_check_tile"] == [14, 14]  # 2 * 3 + 8: 32x40 patches cut into 3x4 tiles
    for name in ("float32", "float16", "int8", "fixed"):
        assert variants[name]["tiles_exactly"] is True, (name, variants[name]["tiled_vs_whole_psnr"])
    assert _inf(variants["int8"]["tiled_vs_whole_psnr"]) == float("inf")  # integer kernels: bit-identical
    dynamic = variants["dynamic_int8"]
    assert dynamic["tiles_exactly"] is False and _inf(dynamic["tiled_vs_whole_psnr"]) < 100.0, dynamic


def test_the_fixed_variant_is_tiled_at_its_size_and_matches_the_saved_model(converted, saved_model):
    from phone2dslr.export import tiles

    runner = tflite_runtime.TFLiteRunner(converted["fixed"])
    assert runner.fixed_size == (FIXED_TILE, FIXED_TILE)
    assert runner.input_details["shape_signature"].tolist() == [1, FIXED_TILE, FIXED_TILE, 3]
    with pytest.raises(tflite_convert.TFLiteExportError, match="cannot be resized"):
        tflite_runtime.check_resizable(converted["fixed"])
    image = smooth_images(1, 50, 61, seed=4)[0]  # several fixed tiles each way
    tiled = tiles.tiled_apply(runner, image, tile=FIXED_TILE, radius=3, fixed=True)
    whole = tflite_convert.SavedModelEnhancer(saved_model)(image)
    assert tflite_checks.psnr(tiled, whole) > 60.0  # float16 weights: exact tiling, float16 drift only


def test_keys_repeated_for_the_tensorflow_free_runtime_match_the_serving_signature():
    from phone2dslr.trainer import serving

    assert (tflite_runtime.IMAGE_SIGNATURE, tflite_runtime.OUTPUT_KEY) == (serving.IMAGE_SIGNATURE, serving.OUTPUT_KEY)
    assert tflite_runtime.INPUT_KEY == tflite_convert.INPUT_KEY == "image"
    assert tflite_convert.TFLiteExportError is tflite_runtime.TFLiteExportError
