"""Importing the authors' TF1 DPED checkpoint: names, shapes, the formula, Keras, SavedModel and TFLite.

The checkpoint is made here the way the official code makes it (tf.compat.v1 variables in a graph,
saved with tf.compat.v1.train.Saver; random values), together with the official formula computed
by TensorFlow in that graph, which is what the import must reproduce.
"""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from phone2dslr.export import official_dped, tiling
from phone2dslr.export.enhance import load_enhancer
from phone2dslr.export.tflite_convert import SavedModelEnhancer
from phone2dslr.export.tflite_runtime import TFLiteRunner
from phone2dslr import cli

FILTERS = 64  # the official shapes exactly


def _image(h, w, seed=0):  # whole 8-bit levels, so a PNG of it is the same image
    return np.random.default_rng(seed).integers(0, 256, (1, h, w, 3)).astype(np.float32) / 255.0


def make_checkpoint(prefix, images, drop=(), reshape=None, seed=0):
    """Write an official-format checkpoint; return the official formula's output for each image."""
    rng = np.random.default_rng(seed)
    reshape = reshape or {}
    graph = tf.Graph()
    with graph.as_default():
        v1 = tf.compat.v1
        x = v1.placeholder(tf.float32, [1, None, None, 3])

        def variable(value, name=None):
            return tf.Variable(value.astype(np.float32), name=name) if name else tf.Variable(value.astype(np.float32))

        def weights(i, shape):
            w = variable(rng.normal(0, (2.0 / np.prod(shape[:3])) ** 0.5, shape), name=f"W{i}")
            b = variable(rng.normal(0, 0.05, shape[-1:]), name=f"b{i}")
            return w, b

        def conv(t, w, b):
            return tf.nn.conv2d(t, w, strides=[1, 1, 1, 1], padding="SAME") + b

        def instance_norm(t):  # as the official models.py: shift, then scale, unnamed
            mu, sigma_sq = tf.nn.moments(t, [1, 2], keepdims=True)
            shift = variable(rng.normal(0, 0.2, [FILTERS]))
            scale = variable(rng.normal(1, 0.2, [FILTERS]))
            return scale * ((t - mu) / (sigma_sq + 1e-3) ** 0.5) + shift

        with v1.variable_scope("generator"):
            w, b = weights(1, [9, 9, 3, FILTERS])
            c = skip = tf.nn.relu(conv(x, w, b))
            for k in range(4):
                w, b = weights(2 + 2 * k, [3, 3, FILTERS, FILTERS])
                c = tf.nn.relu(instance_norm(conv(c, w, b)))
                w, b = weights(3 + 2 * k, [3, 3, FILTERS, FILTERS])
                c = skip = tf.nn.relu(instance_norm(conv(c, w, b))) + skip
            for i in (10, 11):
                w, b = weights(i, [3, 3, FILTERS, FILTERS])
                c = tf.nn.relu(conv(c, w, b))
            w, b = weights(12, [9, 9, FILTERS, 3])
            enhanced = tf.nn.tanh(conv(c, w, b)) * 0.58 + 0.5
        with v1.variable_scope("discriminator"):  # extra variables the import must ignore
            tf.Variable(np.zeros([3, 3, 1, 48], np.float32), name="W1")
        saved = {}
        for var in v1.global_variables():
            name = var.op.name
            if name in drop:
                continue
            saved[name] = tf.Variable(np.zeros(reshape[name], np.float32), name=f"bad_{name.replace('/', '_')}") \
                if name in reshape else var
        saver = v1.train.Saver(var_list=saved)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            outputs = [session.run(enhanced, {x: image}) for image in images]
            saver.save(session, prefix, write_meta_graph=False)
    return outputs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("models_orig") / "iphone_orig")
    images = [_image(40, 52), _image(70, 90, seed=1)]
    return prefix, images, make_checkpoint(prefix, images)


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dped_official"))
    assert cli.main(["import-dped", "--checkpoint", checkpoint[0], "--out", out]) == 0
    return out


def test_checkpoint_has_the_official_names():
    shapes = official_dped.expected_shapes()
    assert shapes["generator/W1"] == [9, 9, 3, 64] and shapes["generator/W12"] == [9, 9, 64, 3]
    assert shapes["generator/W5"] == [3, 3, 64, 64] and shapes["generator/b12"] == [3]
    assert "generator/Variable" in shapes and "generator/Variable_15" in shapes
    assert "generator/Variable_16" not in shapes


def test_keras_import_matches_the_official_formula(checkpoint):
    prefix, images, expected = checkpoint
    model = official_dped.load_generator(prefix)
    for image, want in zip(images, expected):
        np.testing.assert_allclose(model(image).numpy(), want, atol=2e-5)


def test_tiled_import_matches_the_official_formula(checkpoint):
    prefix, images, expected = checkpoint
    model = official_dped.load_generator(prefix)
    np.testing.assert_allclose(tiling.tiled_predict(model, images[1], tile=56), expected[1], atol=1e-4)


def test_cli_enhances_with_the_checkpoint_in_exact_tiles(checkpoint, tmp_path, capsys):
    prefix, images, expected = checkpoint
    Image.fromarray(np.round(images[0][0] * 255).astype(np.uint8)).save(tmp_path / "p.png")
    assert cli.main(["enhance", str(tmp_path / "p.png"), "--model", prefix, "--out", str(tmp_path / "out"),
                     "--tile", "48", "--no-progress"]) == 0
    assert "streamed exactly in 9 stages" in capsys.readouterr().err
    out = np.asarray(Image.open(tmp_path / "out" / "p.png"), np.float32) / 255.0
    np.testing.assert_allclose(out, np.clip(expected[0][0], 0, 1), atol=0.5 / 255 + 1e-4)


def test_saved_model_and_tflite_match_the_official_formula(checkpoint, exported):
    _, images, expected = checkpoint
    assert sorted(os.listdir(exported)) == ["float32.tflite", "saved_model"]
    saved_model = SavedModelEnhancer(os.path.join(exported, "saved_model"))
    runner = TFLiteRunner(os.path.join(exported, "float32.tflite"))
    for image, want in zip(images, expected):  # both resized to each image; output clipped to [0, 1]
        np.testing.assert_allclose(saved_model(image), np.clip(want, 0, 1), atol=2e-5)
        np.testing.assert_allclose(runner(image), np.clip(want, 0, 1), atol=1e-4)
    # exported graphs normalize over the image: the enhancer must not tile them like a local model,
    # but the float32 file carries stage signatures that `enhance` streams on LiteRT
    with pytest.raises(tiling.NotTileableError, match="MEAN"):
        tiling.tflite_radius(os.path.join(exported, "float32.tflite"))
    streamed = load_enhancer(os.path.join(exported, "float32.tflite"))
    assert streamed.radius is None and streamed.streamed is not None and "9 stages" in streamed.note
    np.testing.assert_allclose(streamed(images[1], tile=56), np.clip(expected[1], 0, 1), atol=1e-4)
    # the SavedModel reloads as Keras, so `enhance` still streams it exactly
    enhancer = load_enhancer(os.path.join(exported, "saved_model"))
    assert enhancer.keras_model is not None and "9 stages" in enhancer.note
    np.testing.assert_allclose(enhancer(images[0], tile=48), np.clip(expected[0], 0, 1), atol=1e-4)


def test_missing_and_misshaped_variables_are_named(tmp_path):
    prefix = str(tmp_path / "broken")
    make_checkpoint(prefix, [], drop=("generator/W7", "generator/Variable_3"), reshape={"generator/b3": [32]})
    with pytest.raises(official_dped.OfficialCheckpointError) as e:
        official_dped.read_checkpoint(prefix)
    message = str(e.value)
    assert "missing generator/W7, generator/Variable_3" in message and "\n" not in message
    prefix = str(tmp_path / "misshaped")
    make_checkpoint(prefix, [], reshape={"generator/b3": [32], "generator/W12": [9, 9, 64, 4]})
    with pytest.raises(official_dped.OfficialCheckpointError,
                       match=r"mis-shaped variables: generator/b3 \[32\] \(expected \[64\]\); "
                             r"generator/W12 \[9, 9, 64, 4\] \(expected \[9, 9, 64, 3\]\)$"):
        official_dped.read_checkpoint(prefix)


def test_no_checkpoint_is_one_line_error(tmp_path, capsys):
    assert cli.main(["import-dped", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no TF checkpoint at") and "\n" not in err


def test_a_variant_that_fails_to_convert_is_reported_and_the_others_go_on(checkpoint, tmp_path, monkeypatch):
    """import-dped: a conversion error (e.g. the streamable file's stage check) fails that variant only."""
    from phone2dslr.export import tflite_convert

    original = tflite_convert.convert

    def failing(saved_model_dir, variant, **kwargs):
        if variant == "float32":
            raise tflite_convert.TFLiteExportError("streamable float32: stages differ")
        return original(saved_model_dir, variant, **kwargs)

    monkeypatch.setattr(tflite_convert, "convert", failing)
    result = official_dped.export(checkpoint[0], str(tmp_path), variants=("float32", "dynamic_int8"))
    assert result["tflite"]["float32"] == {"file": None, "passed": False,
                                           "reason": "not converted: streamable float32: stages differ"}
    assert os.path.exists(result["tflite"]["dynamic_int8"]["file"])


def test_import_dped_wants_a_new_or_empty_out_folder(checkpoint, tmp_path, capsys):
    """Before TensorFlow loads (new-user break-test): a file, a folder holding an earlier import (its
    models would be left beside the new ones), a folder that cannot be created: one line, exit 2."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "float32.tflite").write_bytes(b"old")
    for out, says in ((tmp_path / "file", "is a file"), (tmp_path / "used", "is not empty (float32.tflite)"),
                      (tmp_path / "file" / "sub", "cannot create")):
        assert cli.main(["import-dped", "--checkpoint", checkpoint[0], "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and "\n" not in err
