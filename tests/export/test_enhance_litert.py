"""`enhance` with a .tflite file on LiteRT alone, and fixed-size models tiled at their size (issue 12, items 3, 4).

Item 3: the whole chain cli -> enhance -> LiteRT imports no TensorFlow, tf_keras, TFX or Keras. Checked
in a subprocess (this pytest process has TensorFlow loaded) whose import system refuses those
packages, so an import anywhere on the path fails the run, and whose sys.modules is listed after it.

Item 4: a .tflite whose input is fixed ([1, T, T, 3]) is tiled at exactly T with the overlap its
receptive field needs: read off its graph, else its metadata, else --overlap, else a default.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest

import phone2dslr  # noqa: F401  (Keras/TF environment first)
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from phone2dslr import cli
from phone2dslr.export import enhance, tflite_convert, tflite_metadata, tflite_runtime, tiles
from tests.export.photo_helpers import save_tiny_generator

RADIUS = 5  # 9x9 conv (4) then 3x3 conv (1)
HEAVY = ("tensorflow", "tf_keras", "tfx", "keras")
# Runs the CLI with those packages unimportable, then prints which of them got loaded anyway.
NO_TF = f"""
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ImportError(f"test: {{name}} must not be imported by enhance with a .tflite model")
sys.meta_path.insert(0, Refuse())
from phone2dslr.cli import main
rc = main(sys.argv[1:])
print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}), file=sys.stderr)
sys.exit(rc)
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """The same tiny generator as a SavedModel, a dynamic-size float32 .tflite and a fixed 24x24 one."""
    root = tmp_path_factory.mktemp("models")
    save_tiny_generator(str(root / "serving"), filters=4, seed=11)
    paths = {"saved_model": str(root / "serving")}
    for variant in ("float32", "fixed"):
        paths[variant] = str(root / f"{variant}.tflite")
        pathlib.Path(paths[variant]).write_bytes(tflite_convert.convert(paths["saved_model"], variant, fixed_tile=24))
    return paths


def _strided(tmp_path: pathlib.Path, size: int = 32) -> str:
    """A fixed-size encoder-decoder (stride-2 conv, then upsampling): its graph cannot be walked."""
    keras.utils.set_random_seed(3)
    image = keras.Input((size, size, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(image)
    x = keras.layers.UpSampling2D(2)(x)
    out = keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")(x)
    path = tmp_path / "strided.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras.Model(image, out)).convert())
    return str(path)


def test_enhance_with_a_tflite_model_imports_no_tensorflow(models, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photos / "a.jpg")
    Image.fromarray(np.full((30, 20, 3), 90, np.uint8)).save(photos / "b.png")
    for model in (models["float32"], models["fixed"]):
        out = tmp_path / f"out_{pathlib.Path(model).stem}"
        result = subprocess.run([sys.executable, "-c", NO_TF, "enhance", str(photos), "--model", model, "--out",
                                 str(out), "--tile", "32", "--no-progress"], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert "loaded: []" in result.stderr
        assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.png"]


def test_a_fixed_size_model_is_tiled_at_its_size_with_its_receptive_field(models):
    enhancer = enhance.load_enhancer(models["fixed"])
    assert enhancer.fixed == (24, 24) and enhancer.radius == RADIUS
    assert "fixed input 24x24" in enhancer.note and enhancer.min_tile is None  # --tile does not apply
    photo = np.random.default_rng(5).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    whole = tflite_runtime.run_tflite(models["float32"], photo.astype(np.float32) / 255.0)
    out = enhancer(photo, tile=0)  # --tile 0 (whole image) cannot apply either
    assert out.shape == (1, 70, 90, 3)
    np.testing.assert_allclose(out, whole, atol=2e-3)  # the fixed variant has float16 weights
    assert enhancer.tiles(70, 90, 512) == tiles.tile_count(70, 90, 24, RADIUS, fixed=True) == 5 * 6
    small = photo[:16, :20]  # below one tile: mirrored up to 24x24, exact away from the padded edges
    out = enhancer(small)
    assert out.shape == (1, 16, 20, 3)
    exact = (slice(None), slice(0, 16 - RADIUS), slice(0, 20 - RADIUS))
    np.testing.assert_allclose(out[exact], tflite_runtime.run_tflite(models["float32"], small / 255.0)[exact], atol=2e-3)


def test_fixed_windows_span_the_axis_and_overlap_by_the_receptive_field():
    for length in (24, 25, 47, 100, 1000):
        spans = tiles.spans(length, 24, RADIUS, fixed=True)
        assert all(s.read_stop - s.read_start == 24 for s in spans)
        assert spans[0].keep_start == 0 and spans[-1].keep_stop == length and spans[-1].read_stop == length
        for a, b in zip(spans, spans[1:]):
            assert a.keep_stop == b.keep_start
            assert b.keep_start - b.read_start >= RADIUS and a.read_stop - a.keep_stop >= RADIUS
    assert tiles.spans(10, 24, RADIUS, fixed=True) == [tiles.Span(0, 24, 0, 10)]  # read past the end: padded
    with pytest.raises(tiles.NotTileableError, match="twice the receptive-field radius"):
        tiles.spans(100, 10, RADIUS, fixed=True)


def test_a_fixed_model_whose_graph_cannot_be_walked_takes_its_overlap_from_metadata_or_the_user(tmp_path):
    path = _strided(tmp_path)
    with pytest.raises(enhance.EnhanceError, match=r"fixed 32x32 input.*by 64 px.*pass --overlap N of at most 30 "):
        enhance.load_enhancer(path)  # no receptive field anywhere: 64 px assumed, more than the input
    assert enhance.load_enhancer(path, overlap=30).radius == 15  # the largest the message offers works
    with pytest.raises(enhance.EnhanceError, match=r"by 32 px"):
        enhance.load_enhancer(path, overlap=31)  # rounded up to 32: none kept
    given = enhance.load_enhancer(path, overlap=8)
    assert (given.fixed, given.radius) == ((32, 32), 4) and "--overlap" in given.note
    assert given(np.zeros((50, 70, 3), np.uint8)).shape == (1, 50, 70, 3)
    content = pathlib.Path(path).read_bytes()
    info = tflite_metadata.describe(content, "fixed", 6, name="n", version="1", author="a", license="l")
    (tmp_path / "with_meta.tflite").write_bytes(tflite_metadata.add_metadata(content, info))
    said = enhance.load_enhancer(str(tmp_path / "with_meta.tflite"))
    assert said.radius == 6 and "the model's metadata" in said.note


def test_the_cli_says_how_a_fixed_model_is_tiled(models, tmp_path, capsys):
    Image.fromarray(np.full((40, 30, 3), 120, np.uint8)).save(tmp_path / "p.png")
    rc = cli.main(["enhance", str(tmp_path / "p.png"), "--model", models["fixed"], "--out", str(tmp_path / "out"),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0 and "fixed input 24x24: tiles of that size; receptive-field radius 5 px" in err
    low = enhance.load_enhancer(models["fixed"], overlap=3)  # below the graph's 10 px: said, not refused
    assert low.radius == 2 and "tiles overlap 4 px (--overlap), less than the 10 px its graph needs" in low.note
    assert "tile its input size (--tile does not apply)" in err
    rc = cli.main(["enhance", str(tmp_path / "p.png"), "--model", models["saved_model"], "--out",
                   str(tmp_path / "out2"), "--overlap", "8"])
    assert rc == 2 and "--overlap applies to .tflite models only" in capsys.readouterr().err
