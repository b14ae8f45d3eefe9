"""LatestPushedModel: its executor on a real serving folder laid out the way TFX's Pusher writes it."""
from __future__ import annotations

import tensorflow as tf
from tfx.types import channel, standard_artifacts
from tfx.utils import path_utils

from phone2dslr.components.latest_pushed_model import executor as lpm
from phone2dslr.components.latest_pushed_model.component import LatestPushedModel


def _save_model(folder, scale: float) -> None:
    module = tf.Module()
    module.scale = tf.Variable(scale)
    module.__call__ = tf.function(lambda x: x * module.scale, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(folder))


def _run(serving_dir, candidate_dir, out_dir) -> standard_artifacts.Model:
    candidate = standard_artifacts.Model()
    candidate.uri = str(candidate_dir)
    model = standard_artifacts.Model()
    model.uri = str(out_dir)
    lpm.Executor().Do({lpm.CANDIDATE_KEY: [candidate]}, {lpm.MODEL_KEY: [model]},
                      {lpm.SERVING_DIR_KEY: str(serving_dir)})
    return model


def _scale_of(model: standard_artifacts.Model) -> float:
    """What the Evaluator loads: the serving model path of the artifact."""
    loaded = tf.saved_model.load(path_utils.serving_model_path(model.uri))
    return float(loaded(tf.constant([1.0])).numpy()[0])


def test_picks_the_newest_complete_push(tmp_path):
    serving = tmp_path / "serving"
    _save_model(serving / "1700000000", 1.0)
    _save_model(serving / "1700000100", 2.0)
    (serving / "1700000100" / "tflite").mkdir()  # ModelPusher's phone models: not part of the baseline
    (serving / "1700000100" / "tflite" / "float32.tflite").write_bytes(b"tflite")
    _save_model(serving / "999", 9.0)  # numerically older although it sorts last as text
    (serving / "1700000200" / "variables").mkdir(parents=True)  # a push still copying: no saved_model.pb yet
    (serving / "tflite").mkdir()  # not a version folder
    _save_model(tmp_path / "candidate" / "Format-Serving", 5.0)

    model = _run(serving, tmp_path / "candidate", tmp_path / "out")
    assert _scale_of(model) == 2.0
    assert model.get_string_custom_property(lpm.SOURCE_PROPERTY) == "pushed"
    assert model.get_string_custom_property(lpm.VERSION_PROPERTY) == "1700000100"
    assert model.get_string_custom_property(lpm.PUSHED_PATH_PROPERTY) == str(serving / "1700000100")
    copied = path_utils.serving_model_dir(model.uri)
    assert tf.io.gfile.exists(f"{copied}/saved_model.pb") and not tf.io.gfile.exists(f"{copied}/tflite")


def test_first_run_uses_the_candidate_as_its_own_baseline(tmp_path):
    _save_model(tmp_path / "candidate" / "Format-Serving", 5.0)
    for serving in (tmp_path / "missing", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        model = _run(serving, tmp_path / "candidate", tmp_path / f"out_{serving.name}")
        assert _scale_of(model) == 5.0
        assert model.get_string_custom_property(lpm.SOURCE_PROPERTY) == "candidate"
        assert not model.has_custom_property(lpm.VERSION_PROPERTY)


def test_latest_push_ignores_incomplete_versions(tmp_path):
    (tmp_path / "1700000300").mkdir()
    assert lpm.latest_push(str(tmp_path)) is None
    assert lpm.latest_push(str(tmp_path / "absent")) is None


def test_component_wiring():
    candidate = channel.Channel(type=standard_artifacts.Model)
    component = LatestPushedModel(serving_dir="gs://bucket/serving", candidate=candidate)
    assert component.exec_properties == {lpm.SERVING_DIR_KEY: "gs://bucket/serving"}
    assert component.inputs[lpm.CANDIDATE_KEY] is candidate
    assert component.outputs[lpm.MODEL_KEY].type is standard_artifacts.Model
