"""TFLiteExport's executor run for real: real artifacts, GZIP TFRecords of PNG bytes, LiteRT."""
import json

import numpy as np
import pytest

import phone2dslr    # noqa: F401  (Keras/TF environment first)
import tensorflow as tf
from tfx import types
from tfx.types import standard_artifacts

from phone2dslr.components.run_report import quality_sections
from phone2dslr.components.tflite_export.component import TFLiteExport, TFLiteModels
from phone2dslr.components.tflite_export.executor import Executor, parse_parameters
from phone2dslr.export import tflite_checks, tflite_convert, tflite_metadata, tflite_runtime, tflite_tile_checks
from tests.export.test_tflite import dslr_like, save_generator, smooth_images, tiny_generator

PARAMS = {
    "variants": json.dumps(["float32", "float16", "int8", "fixed"]),
    "min_parity_psnr": json.dumps({"float32": 45.0, "float16": 200.0, "int8": 15.0, "fixed": 40.0}),
    "representative_samples": 2,
    "eval_split": "test",
    "representative_split": "train",
    "max_eval_images": 2,
    "max_eval_side": 24,
    "latency_height": 16,
    "latency_width": 16,
    "latency_runs": 1,
    "threads": 2,
    "fixed_tile": 16,  # the tiny generator's radius is 3: 16 px tiles overlap by 6
    "author": "the tests",
    "license": "Apache-2.0",
}


def _png(image: np.ndarray) -> bytes:
    return tf.io.encode_png(tf.image.convert_image_dtype(image[0], tf.uint8, saturate=True)).numpy()


def _example(phone: bytes, dslr: bytes) -> bytes:
    feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])) for k, v in
               (("phone", phone), ("dslr", dslr), ("source", b"demo"))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_split(root, split: str, records: list[bytes]) -> None:
    folder = root / f"Split-{split}"
    folder.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as writer:
        for record in records:
            writer.write(record)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, list[types.Artifact]]:
    root = tmp_path_factory.mktemp("artifacts")
    model = standard_artifacts.Model()
    model.uri = str(root / "model")
    save_generator(tiny_generator(0), str(root / "model" / "Format-Serving"))

    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = json.dumps(["train", "test"])
    test_phones = smooth_images(3, 32, 28, seed=5)
    _write_split(root / "examples", "test", [
        _example(b"", _png(test_phones[0])),  # unpaired DSLR-only example: set aside, counted
        _example(b"not an image", b""),  # undecodable: set aside, counted
        _example(_png(test_phones[1]), _png(dslr_like(test_phones[1]))),
        _example(_png(test_phones[2]), b""),  # phone only: parity, no quality
    ])
    _write_split(root / "examples", "train", [_example(_png(p), b"") for p in smooth_images(3, 20, 20, seed=6)])
    return {"model": [model], "examples": [examples]}


def _output(tmp_path) -> TFLiteModels:
    output = TFLiteModels()
    output.uri = str(tmp_path / "tflite")
    return output


def _blessing(tmp_path, blessed: int) -> standard_artifacts.ModelBlessing:
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", blessed)
    return blessing


def test_blessed_model_ships_the_variants_that_pass(inputs, tmp_path):
    output = _output(tmp_path)
    Executor().Do(dict(inputs, model_blessing=[_blessing(tmp_path, 1)]), {"tflite_models": [output]}, dict(PARAMS))

    results = tflite_checks.read_results(output.uri)
    assert results["shipped"] == ["float32", "int8", "fixed"]  # float16's bound of 200 dB cannot hold
    assert results["model_blessed"] is True
    assert results["eval_images"] == 2 and results["paired_eval_images"] == 1
    assert results["eval_sizes"] == [[24, 24]]  # 32x28 centre-cropped to max_eval_side
    assert results["set_aside"]["eval"] == {"no_phone": 1, "undecodable": 1}
    assert results["representative_samples"] == 2
    assert (tmp_path / "tflite" / "float32.tflite").exists() and (tmp_path / "tflite" / "int8.tflite").exists()
    assert (tmp_path / "tflite" / "rejected" / "float16.tflite").exists()
    assert float(results["variants"]["float32"]["parity_psnr"]) > 45.0

    assert output.get_string_custom_property("shipped_variants") == "float32,int8,fixed"
    assert output.get_int_custom_property("num_shipped") == 3
    assert output.get_int_custom_property("model_blessed") == 1
    assert output.get_float_custom_property("psnr") == pytest.approx(results["variants"]["float32"]["psnr"])
    assert 0.0 < output.get_float_custom_property("ssim") <= 1.0
    for key in ("psnr_pooled", "ms_ssim"):
        assert output.get_float_custom_property(key) == pytest.approx(results["variants"]["float32"][key])

    image = np.full([40, 30, 3], 0.5, np.float32)  # the shipped file runs at any size
    assert tflite_runtime.run_tflite(str(tmp_path / "tflite" / "float32.tflite"), image).shape == (1, 40, 30, 3)


def test_every_shipped_file_has_metadata_a_gpu_verdict_and_a_tiling_measurement(inputs, tmp_path, monkeypatch):
    """Issue 12, items 4-6, through the executor: the fixed variant, metadata read back from the shipped
    files, the GPU verdict and tiled-vs-whole PSNR in tflite_results.json and in the run report's table."""
    monkeypatch.setattr(tflite_tile_checks, "FIXED_CHECK_IMAGES", 1)
    output = _output(tmp_path)
    Executor().Do(inputs, {"tflite_models": [output]}, dict(PARAMS, variants='["float32", "dynamic_int8", "fixed"]',
                                                             min_parity_psnr='{"float32": 45, "dynamic_int8": 20, '
                                                                             '"fixed": 40}'))
    results = tflite_checks.read_results(output.uri)
    assert results["shipped"] == ["float32", "dynamic_int8", "fixed"] and results["fixed_tile"] == 16
    for variant in results["shipped"]:
        entry = results["variants"][variant]
        assert isinstance(entry["gpu_compatible"], bool) and entry["gpu_analyzer"] == "compatible"
        assert entry["gpu_compatible"] == (variant == "fixed")  # the others take any size: "dynamic" issue
        assert entry["tiled_vs_whole_psnr"] is not None and entry["metadata"] is True
        info = tflite_metadata.read_metadata((tmp_path / "tflite" / entry["file"]).read_bytes())
        assert (info.author, info.license, info.version) == ("the tests", "Apache-2.0", "model")  # uri's name
        assert info.tiling["overlap"] == 6 and info.tiling["variant"] == variant
    fixed = results["variants"]["fixed"]
    assert fixed["fixed_size"] == [16, 16] and fixed["tiles_exactly"] is True
    assert tflite_metadata.read_metadata((tmp_path / "tflite" / "fixed.tflite").read_bytes()).input.size == (16, 16)
    assert results["variants"]["dynamic_int8"]["tiles_exactly"] is False
    # The fixed variant is scored on its first FIXED_CHECK_IMAGES images only (1 here, of 2): its
    # quality gate and the report compare it with the phone input on those images, not on all.
    assert results["variants"]["float32"]["phone_input"] is None
    assert fixed["checked_images"] == 1 and isinstance(fixed["phone_input"], dict)

    page = quality_sections.tflite(results, output.uri)
    assert "Tiled vs whole" in page and "GPU delegate" in page and "16x16 input" in page
    assert page.count(">compatible<") == 1 and page.count(">issues<") == 2 and "not exact" in page
    assert "scored on 1 of 2 images, where the phone input has PSNR" in page


def test_unblessed_model_ships_nothing(inputs, tmp_path):
    output = _output(tmp_path)
    Executor().Do(dict(inputs, model_blessing=[_blessing(tmp_path, 0)]), {"tflite_models": [output]}, dict(PARAMS))

    assert sorted(p.name for p in (tmp_path / "tflite").iterdir()) == [tflite_checks.RESULTS_FILE]
    results = tflite_checks.read_results(output.uri)
    assert results["shipped"] == [] and results["model_blessed"] is False and "not blessed" in results["reason"]
    assert output.get_string_custom_property("shipped_variants") == ""
    assert output.get_int_custom_property("model_blessed") == 0


def test_missing_split_is_a_clear_error(inputs, tmp_path):
    with pytest.raises(tflite_convert.TFLiteExportError, match="no split 'eval' .*have: train, test"):
        Executor().Do(inputs, {"tflite_models": [_output(tmp_path)]}, dict(PARAMS, eval_split="eval"))


def test_component_takes_config_values_and_checks_them_early():
    model, examples = types.Channel(type=standard_artifacts.Model), types.Channel(type=standard_artifacts.Examples)
    component = TFLiteExport(model=model, examples=examples, variants=["float32", "int8"],
                             min_parity_psnr={"float32": 45.0, "int8": 28.0}, representative_samples=4)
    props = component.exec_properties
    assert json.loads(props["variants"]) == ["float32", "int8"]
    assert parse_parameters(props)["min_parity_psnr"] == {"float32": 45.0, "int8": 28.0}
    assert component.outputs["tflite_models"].type is TFLiteModels
    assert set(component.inputs) == {"model", "examples"}  # the blessing is optional
    with pytest.raises(ValueError, match="no bound for int8"):
        TFLiteExport(model=model, examples=examples, variants=["int8"], min_parity_psnr={"float32": 45.0})
    fixed = TFLiteExport(model=model, examples=examples, fixed_tile=256, author="me", license="MIT")
    params = parse_parameters(fixed.exec_properties)
    assert (params["fixed_tile"], params["author"], params["license"]) == (256, "me", "MIT")
    assert "fixed" in params["variants"] and params["min_parity_psnr"]["fixed"] == 40.0  # on by default
    with pytest.raises(ValueError, match="fixed_tile must be a positive number of pixels, got 0"):
        TFLiteExport(model=model, examples=examples, fixed_tile=0)


def test_runs_in_a_local_pipeline(inputs, tmp_path):
    """Through LocalDagRunner: JSON parameters, the custom type in MLMD and its custom properties."""
    # Direct imports: `tfx.v1` would import every standard component (TFMA, Transform, ...) first.
    from ml_metadata.metadata_store import metadata_store
    from tfx.dsl.components.common.importer import Importer
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.metadata import sqlite_metadata_connection_config
    from tfx.orchestration.pipeline import Pipeline

    model_importer = Importer(
        source_uri=inputs["model"][0].uri, artifact_type=standard_artifacts.Model).with_id("model_importer")
    examples_importer = Importer(
        source_uri=inputs["examples"][0].uri, artifact_type=standard_artifacts.Examples,
        properties={"split_names": json.dumps(["train", "test"])}).with_id("examples_importer")
    export = TFLiteExport(model=model_importer.outputs["result"], examples=examples_importer.outputs["result"],
                          variants=["float32"], min_parity_psnr={"float32": 45.0}, max_eval_images=1,
                          latency_size=(16, 16), latency_runs=1)
    connection = sqlite_metadata_connection_config(str(tmp_path / "metadata.sqlite"))
    LocalDagRunner().run(Pipeline(
        pipeline_name="tflite_export_test", pipeline_root=str(tmp_path / "root"),
        components=[model_importer, examples_importer, export], metadata_connection_config=connection))

    (artifact,) = metadata_store.MetadataStore(connection).get_artifacts_by_type(TFLiteModels.TYPE_NAME)
    assert artifact.custom_properties["shipped_variants"].string_value == "float32"
    assert tflite_checks.read_results(artifact.uri)["variants"]["float32"]["passed"] is True


def test_artifact_type_name_compiles_for_kubeflow_v2():
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    assert "phone2dslr.TFLiteModels" in compiler_utils.get_artifact_schema(TFLiteModels)
