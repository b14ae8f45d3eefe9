"""TFLite model metadata (issue 12, item 5): written into every shipped file and read back.

The metadata is the standard TFLITE_METADATA flatbuffer (metadata_schema.fbs 1.5.0); these tests
read it back with export/tflite_metadata.py's reader, which walks the flatbuffer by the schema's
field ids. The files come from the project's own conversion of a tiny generator (radius 5).
"""
from __future__ import annotations

import json

import flatbuffers
import numpy as np
import pytest

import phone2dslr  # noqa: F401  (Keras/TF environment first)
from ai_edge_litert import schema_py_generated as schema

from phone2dslr.export import tflite_convert, tflite_metadata, tflite_runtime
from tests.export.photo_helpers import save_tiny_generator

FIELDS = {"name": "test enhancer", "version": "model artifact 7", "author": "the tests", "license": "Apache-2.0"}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, bytes]:
    saved_model = save_tiny_generator(str(tmp_path_factory.mktemp("model") / "serving"), filters=8, seed=2)
    return {v: tflite_convert.convert(saved_model, v, fixed_tile=32) for v in ("float32", "dynamic_int8", "fixed")}


def test_metadata_is_read_back_with_the_io_and_tiling_contract(converted):
    content, written = tflite_metadata.with_metadata(converted["float32"], "float32", FIELDS)
    assert written
    info = tflite_metadata.read_metadata(content)
    assert (info.name, info.version, info.author, info.license) == tuple(FIELDS.values())
    assert info.min_parser_version == "1.5.0"
    assert "float32" in info.description and "overlapping by 10 px" in info.description
    assert info.input.name == "image" and info.output.name == "enhanced"
    assert "RGB, float32 [1, H, W, 3], any H and W, values in [0, 1]" in info.input.description
    assert info.input.size is None  # any size
    assert (info.input.mean, info.input.std) == ([0.0], [255.0])  # 0..255 pixels -> [0, 1]
    assert (info.output.mean, info.output.std) == ([], [])  # no normalization applied to the output
    assert (info.input.min, info.input.max, info.output.min, info.output.max) == ([0.0], [1.0], [0.0], [1.0])
    assert info.tiling == {"tile": None, "overlap": 10, "receptive_field_radius": 5, "tiles_exactly": True,
                           "variant": "float32"}
    assert "custom metadata 'phone2dslr.tiling'" in info.contract


def test_the_fixed_variant_states_its_size_and_dynamic_int8_that_it_does_not_tile_exactly(converted):
    fixed = tflite_metadata.read_metadata(tflite_metadata.with_metadata(converted["fixed"], "fixed", FIELDS)[0])
    assert fixed.input.size == fixed.output.size == (32, 32)
    assert "[1, 32, 32, 3] (fixed)" in fixed.input.description
    assert fixed.tiling["tile"] == [32, 32] and fixed.tiling["overlap"] == 10
    dynamic = tflite_metadata.read_metadata(
        tflite_metadata.with_metadata(converted["dynamic_int8"], "dynamic_int8", FIELDS)[0])
    assert dynamic.tiling["tiles_exactly"] is False and "close to, not equal to" in dynamic.description


def test_the_file_with_metadata_is_a_standard_tflite_model_that_computes_the_same(converted):
    content, _ = tflite_metadata.with_metadata(converted["float32"], "float32", FIELDS)
    root = schema.Model.GetRootAs(content, 0)
    names = [root.Metadata(i).Name().decode() for i in range(root.MetadataLength())]
    assert names.count("TFLITE_METADATA") == 1 and "min_runtime_version" in names  # the converter's kept
    buffer = root.Buffers(root.Metadata(names.index("TFLITE_METADATA")).Buffer()).DataAsNumpy().tobytes()
    assert buffer[4:8] == b"M001"  # the metadata schema's file identifier
    image = np.random.default_rng(1).random((1, 20, 30, 3), dtype=np.float32)
    np.testing.assert_array_equal(tflite_runtime.run_tflite(content, image),
                                  tflite_runtime.run_tflite(converted["float32"], image))
    again = tflite_metadata.add_metadata(content, tflite_metadata.read_metadata(content))  # replaced, not added
    root = schema.Model.GetRootAs(again, 0)
    assert [root.Metadata(i).Name().decode() for i in range(root.MetadataLength())].count("TFLITE_METADATA") == 1


def test_a_model_without_metadata_reads_as_none_and_a_damaged_one_fails_clearly(converted):
    assert tflite_metadata.read_metadata(converted["float32"]) is None
    content, _ = tflite_metadata.with_metadata(converted["float32"], "float32", FIELDS)
    obj = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    entry = next(m for m in obj.metadata if m.name == b"TFLITE_METADATA")
    obj.buffers[entry.buffer].data = np.frombuffer(json.dumps({"not": "a flatbuffer"}).encode(), np.uint8)
    builder = flatbuffers.Builder(0)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ValueError, match="not TFLite model metadata"):
        tflite_metadata.read_metadata(bytes(builder.Output()))
