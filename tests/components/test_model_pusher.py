"""ModelPusher: TFX's real Pusher executor, plus the TFLite files that passed, only when blessed."""
import json
import os

import numpy as np
import pytest
import tf_keras as keras
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from phone2dslr.components.model_pusher import executor
from phone2dslr.components.tflite_export.component import TFLiteModels
from phone2dslr.export import tflite_checks, tflite_runtime
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


def _push(tmp_path, model, models, blessed: bool):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    serving = tmp_path / "serving"
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(serving)))
    executor.Executor().Do(
        {"model": [model], "model_blessing": [blessing], executor.TFLITE_MODELS_KEY: [models]},
        {executor.PUSHED_MODEL_KEY: [pushed]},
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
