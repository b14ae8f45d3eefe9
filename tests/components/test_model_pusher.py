"""ModelPusher: TFX's Pusher executor, plus the TFLite files that passed, only when blessed, once."""
import json
import os
import shutil

import numpy as np
import pytest
import tf_keras as keras
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from phone2dslr.components.model_pusher import executor
from phone2dslr.components.tflite_export.component import TFLiteModels
from phone2dslr.export import tflite_checks, tflite_runtime
from phone2dslr.pipeline import outputs
from phone2dslr.trainer.serving import export_image_generator


@pytest.fixture(scope="module")
def model_and_tflite(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    inputs = keras.Input((None, None, 3))
    generator = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(inputs))
    model = standard_artifacts.Model()
    model.uri = str(root / "model")
    export_image_generator(generator, os.path.join(model.uri, "Format-Serving"))
    rng = np.random.default_rng(0)
    images = [tflite_checks.EvalImage(rng.random([1, 16, 16, 3], np.float32), None)]
    models = TFLiteModels()
    models.uri = str(root / "tflite")
    # float32 passes; float16 gets an impossible parity bound, so it must not be pushed
    tflite_checks.export_variants(os.path.join(model.uri, "Format-Serving"), models.uri, images, None,
                                  {"float32": 45.0, "float16": 500.0}, variants=("float32", "float16"),
                                  latency_size=(16, 16), latency_runs=1)
    return model, models


def _push(tmp_path, model, models, blessed: bool, serving=None, name: str = "pushed"):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / f"blessing_{name}")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / name)
    serving = serving or tmp_path / "serving"
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(serving)))
    inputs = {"model": [model], "model_blessing": [blessing]}
    if models is not None:
        inputs[executor.TFLITE_MODELS_KEY] = [models]
    executor.Executor().Do(inputs, {executor.PUSHED_MODEL_KEY: [pushed]},
                           {"push_destination": proto_utils.proto_to_json(destination)})
    return pushed, serving


def test_blessed_model_is_pushed_with_the_tflite_variants_that_passed(tmp_path, model_and_tflite):
    model, models = model_and_tflite
    pushed, serving = _push(tmp_path, model, models, blessed=True)
    (version,) = os.listdir(serving)
    version_dir = serving / version
    assert (version_dir / "saved_model.pb").exists()
    assert sorted(os.listdir(version_dir / "tflite")) == ["float32.tflite", tflite_checks.RESULTS_FILE]
    results = json.loads((version_dir / "tflite" / tflite_checks.RESULTS_FILE).read_text())
    assert results["shipped"] == ["float32"] and not results["variants"]["float16"]["passed"]
    assert pushed.get_string_custom_property("tflite_variants") == "float32"
    assert (tmp_path / "pushed" / "tflite" / "float32.tflite").exists()
    runner = tflite_runtime.TFLiteRunner(str(version_dir / "tflite" / "float32.tflite"))
    assert runner(np.zeros([1, 20, 12, 3], np.float32)).shape == (1, 20, 12, 3)


def test_unblessed_model_pushes_nothing(tmp_path, model_and_tflite):
    model, models = model_and_tflite
    pushed, serving = _push(tmp_path, model, models, blessed=False)
    assert not serving.exists() or not os.listdir(serving)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not (tmp_path / "pushed" / "tflite").exists()


def _versions(serving) -> list[str]:
    return sorted(os.listdir(serving), key=int)


def _other_model(root) -> standard_artifacts.Model:
    """A second generator: same architecture, different weights."""
    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer="ones")
    generator = keras.Model(inputs, conv(inputs))
    model = standard_artifacts.Model()
    model.uri = str(root / "other_model")
    export_image_generator(generator, os.path.join(model.uri, "Format-Serving"))
    return model


def test_the_same_model_is_pushed_once_even_from_a_moved_pipeline_root(tmp_path, model_and_tflite):
    model, models = model_and_tflite
    first, serving = _push(tmp_path, model, models, blessed=True, name="first")
    (version,) = _versions(serving)
    record = json.loads((serving / version / "push.json").read_text())
    assert record["fingerprint"] == first.get_string_custom_property(executor.FINGERPRINT)
    assert record["fingerprint"].startswith("sha256:") and record["tflite_variants"] == ["float32"]
    assert first.get_int_custom_property(executor.ALREADY_PUSHED) == 0

    # The cached re-run: same artifacts again; then the same bytes under another pipeline root.
    moved_model, moved_tflite = standard_artifacts.Model(), TFLiteModels()
    moved_model.uri, moved_tflite.uri = str(tmp_path / "root2" / "model"), str(tmp_path / "root2" / "tflite")
    shutil.copytree(model.uri, moved_model.uri)
    shutil.copytree(models.uri, moved_tflite.uri)
    for name, (m, t) in {"second": (model, models), "moved": (moved_model, moved_tflite)}.items():
        again, _ = _push(tmp_path, m, t, blessed=True, serving=serving, name=name)
        assert _versions(serving) == [version], name
        assert again.get_int_custom_property("pushed") == 1
        assert again.get_int_custom_property(executor.ALREADY_PUSHED) == 1
        assert again.get_string_custom_property("pushed_destination") == str(serving / version)
        assert again.get_string_custom_property("pushed_version") == version
        assert again.get_string_custom_property("tflite_dir") == str(serving / version / "tflite")
        assert again.get_string_custom_property("tflite_variants") == "float32"
        assert (tmp_path / name / "saved_model.pb").exists()  # the artifact's own archive copy

    # A version pushed before push.json existed is recognised from its files.
    (serving / version / "push.json").unlink()
    legacy, _ = _push(tmp_path, model, models, blessed=True, serving=serving, name="legacy")
    assert _versions(serving) == [version] and legacy.get_int_custom_property(executor.ALREADY_PUSHED) == 1

    # The run summary says the shown version is the earlier push.
    (line,) = [x for x in outputs._verdict({("ModelPusher", "pushed_model"): again.mlmd_artifact})
               if "pushed model" in x]
    assert str(serving / version) in line and "already pushed" in line


def test_a_different_model_gets_a_new_version_and_an_older_one_comes_back_as_the_newest(
        tmp_path, model_and_tflite):
    model, models = model_and_tflite
    first, serving = _push(tmp_path, model, models, blessed=True, name="first")
    other, _ = _push(tmp_path, _other_model(tmp_path), None, blessed=True, serving=serving, name="other")
    # Pushed within the same second as the first: still its own, newer version (TFX's Pusher
    # would have skipped the copy and reported the first model's folder).
    old, new = _versions(serving)
    assert other.get_int_custom_property(executor.ALREADY_PUSHED) == 0
    assert other.get_string_custom_property("pushed_destination") == str(serving / new)
    assert not (serving / new / "tflite").exists()
    assert first.get_string_custom_property(executor.FINGERPRINT) != \
        other.get_string_custom_property(executor.FINGERPRINT)
    # The first model again: it is only an older version, and TF Serving serves the newest, so it
    # is pushed again and becomes the newest.
    back, _ = _push(tmp_path, model, models, blessed=True, serving=serving, name="back")
    assert _versions(serving)[:2] == [old, new] and len(_versions(serving)) == 3
    newest = _versions(serving)[-1]
    assert back.get_int_custom_property(executor.ALREADY_PUSHED) == 0
    assert back.get_string_custom_property("pushed_destination") == str(serving / newest)
    assert (serving / newest / "tflite" / "float32.tflite").read_bytes() == \
        (serving / old / "tflite" / "float32.tflite").read_bytes()
    line = "\n".join(outputs._verdict({("ModelPusher", "pushed_model"): back.mlmd_artifact}))
    assert str(serving / newest) in line and "already pushed" not in line
