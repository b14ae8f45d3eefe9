"""TFLite model metadata that app developers can read: what the model is, its I/O, how to tile it.

Every shipped `.tflite` carries the standard TFLite model metadata (the schema of TFLite Support,
tensorflow_lite_support/metadata/metadata_schema.fbs, version 1.5.0, file identifier "M001"): a
flatbuffer in one of the model's buffers, named by the model's metadata entry "TFLITE_METADATA".
Android Studio's model viewer, the TFLite Support metadata extractor (Java/C++/Python) and the
MetadataDisplayer read it. What we write:

- ModelMetadata: name, description, version, author, license, min_parser_version;
- one SubGraphMetadata with a description of the whole contract, the input and output
  TensorMetadata (name, description with the shape and, for integer I/O, its quantisation;
  ImageProperties RGB with the fixed size when there is one; on the input, NormalizationOptions
  mean 0, std 255, so an app's 0..255 pixels become the [0, 1] floats the model takes; Stats min
  0, max 1);
- the tiling contract as a CustomMetadata entry (the schema's own place for model-specific data,
  added in 1.5.0) named "phone2dslr.tiling", holding UTF-8 JSON: `tile` (the fixed input size, or
  null for any size), `overlap` (pixels tiles must overlap: 2 x the receptive-field radius; null
  when the model cannot be tiled exactly), `receptive_field_radius`, `tiles_exactly` (false for
  dynamic-range int8, whose per-tile activation ranges differ).

Why by hand: TFLite Support's metadata writers (tflite-support 0.4.4, the last release) pin
protobuf < 4, which does not install with this project's protobuf 6 (`uv pip install --dry-run`
says so), and neither LiteRT nor TensorFlow ship generated classes for metadata_schema.fbs. So the
subset above is written with the `flatbuffers` runtime, field ids as in the schema, and put into the
model with LiteRT's generated TFLite schema classes (the round trip TensorFlow's converter itself
makes to add its conversion metadata). `read_metadata` reads it back the same way. No TensorFlow.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
from flatbuffers import number_types as types
from flatbuffers.table import Table

from phone2dslr.export.stream_spec import STREAM_NAME
from phone2dslr.export.tflite_buffers import (  # noqa: F401  (put_buffer, read_buffer re-exported)
    field_floats as _float_list, field_scalar as _scalar, field_string as _string, field_table as _table,
    field_tables as _tables, put_buffer, read_buffer)

METADATA_NAME = "TFLITE_METADATA"  # the model metadata entry that TFLite Support looks for
FILE_IDENTIFIER = b"M001"  # metadata_schema.fbs
MIN_PARSER_VERSION = "1.5.0"  # CustomMetadata is the newest field written (added in 1.5.0)
TILING_NAME = "phone2dslr.tiling"
_IMAGE_PROPERTIES, _RGB, _NORMALIZATION_OPTIONS = 2, 1, 1  # union / enum values of the schema


@dataclass
class TensorInfo:
    """One input or output image tensor as the metadata describes it."""

    name: str
    description: str
    size: tuple[int, int] | None = None  # (height, width) of a fixed-size tensor
    mean: list[float] = field(default_factory=list)  # NormalizationOptions: (pixel - mean) / std; [] for none
    std: list[float] = field(default_factory=list)
    min: list[float] = field(default_factory=lambda: [0.0])  # Stats, in the float domain
    max: list[float] = field(default_factory=lambda: [1.0])


@dataclass
class ModelInfo:
    """Everything written as (and read back from) a model's metadata."""

    name: str
    description: str
    version: str
    author: str
    license: str
    input: TensorInfo
    output: TensorInfo
    contract: str = ""  # the SubGraphMetadata description: the I/O and tiling contract in words
    tiling: dict[str, Any] = field(default_factory=dict)  # the "phone2dslr.tiling" JSON
    min_parser_version: str = MIN_PARSER_VERSION


def describe(model: bytes, variant: str, radius: int | None, *, name: str, version: str, author: str,
             license: str, exact: bool = True) -> ModelInfo:
    """The metadata of one TFLite variant (bytes) of a generator: I/O read off the model with LiteRT.

    `radius`: the receptive-field radius in pixels (None: the model cannot be tiled exactly, e.g. it
    normalizes over the whole image); `exact`: whether tiles with that overlap reproduce the
    whole-image output (False for dynamic-range int8). Raises TFLiteExportError for a model without
    one image input and one output.
    """
    from phone2dslr.export.tflite_runtime import INPUT_KEY, OUTPUT_KEY, TFLiteRunner

    runner = TFLiteRunner(model, threads=1)
    size = runner.fixed_size
    shape = f"[1, {size[0]}, {size[1]}, 3] (fixed)" if size else "[1, H, W, 3], any H and W"
    tensors = []
    for details, what, key in ((runner.input_details, "photo to enhance", INPUT_KEY),
                               (runner.output_details, "enhanced photo", OUTPUT_KEY)):
        dtype = np.dtype(details["dtype"]).name
        text = f"The {what}: RGB, {dtype} {shape}"
        if dtype == "float32":
            text += ", values in [0, 1] (pixel / 255)."
        else:  # integer I/O: the app quantizes [0, 1] floats itself
            scale, zero = details["quantization"]
            text += f", quantized: value = (q - {zero}) * {scale:.6g} for values in [0, 1]."
        tensors.append(TensorInfo(key, text, size=size))  # the signature's names, not the graph's
    # 0..255 pixels -> [0, 1]: what an app's image processor applies to the input. The output gets
    # none (a NormalizationOptions there would be applied in the same direction, not inverted).
    tensors[0].mean, tensors[0].std = [0.0], [255.0]
    overlap = None if radius is None else 2 * radius
    tiling = {"tile": None if size is None else list(size), "overlap": overlap, "receptive_field_radius": radius,
              "tiles_exactly": bool(exact and radius is not None), "variant": variant}
    if radius is None and read_buffer(model, STREAM_NAME) is not None:
        how = ("It normalizes over the whole image: run whole photos, or stream large ones stage by stage with "
               f"its stage_<k> signatures and the plan in model metadata {STREAM_NAME!r} (exact).")
        tiling["streamable"] = True
    elif radius is None:
        how = "It cannot be tiled exactly (it normalizes over the whole image): run it on whole photos."
    else:
        what_tile = f"tiles of exactly {size[0]}x{size[1]}" if size else "tiles of any size above the overlap"
        how = (f"Tile large photos: {what_tile}, overlapping by {overlap} px (receptive-field radius {radius} px); "
               f"keep each tile's output except {radius} px at edges inside the photo. ")
        smaller = (" for photos at least that size (a smaller side is mirror-padded to the tile: within the "
                   "radius of that padded edge the result is close, not equal)") if size else ""
        how += (f"The result equals the whole-photo output up to float rounding{smaller}." if exact else
                "The result is close to, not equal to, the whole-photo output (dynamic-range int8 quantizes "
                "activations per tile).")
    contract = (f"Input {tensors[0].description} Output {tensors[1].description} {how} Tiling contract as JSON "
                f"in custom metadata {TILING_NAME!r}.")
    description = (f"Photo enhancement generator (phone photo -> DSLR-like photo), TFLite variant {variant}, "
                   f"made by the phone2dslr pipeline. {how}")
    return ModelInfo(name=name, description=description, version=version, author=author, license=license,
                     input=tensors[0], output=tensors[1], contract=contract, tiling=tiling)


def with_metadata(model: bytes, variant: str, fields: dict[str, str]) -> tuple[bytes, bool]:
    """(the model with the metadata of `variant`, True), or (the model as it was, False) when it is
    not an image model the metadata can describe (its checks then fail it with the reason).
    `fields`: name, version, author, license. Dynamic-range int8 is declared not to tile exactly."""
    from phone2dslr.export.tflite_graph import tflite_radius
    from phone2dslr.export.tflite_runtime import TFLiteExportError
    from phone2dslr.export.tiles import NotTileableError

    try:
        radius: int | None = tflite_radius(model)
    except NotTileableError:
        radius = None
    try:
        info = describe(model, variant, radius, exact=variant != "dynamic_int8", **fields)
    except TFLiteExportError:
        return model, False
    return add_metadata(model, info), True


def metadata_buffer(info: ModelInfo) -> bytes:
    """The metadata flatbuffer (file identifier M001) of `info`."""
    b = flatbuffers.Builder(1024)
    tensors = [_tensor(b, t) for t in (info.input, info.output)]
    name = b.CreateString(TILING_NAME)
    data = json.dumps(info.tiling, sort_keys=True).encode("utf-8")
    b.StartVector(1, len(data), 16)  # the schema aligns custom data to 16
    for byte in reversed(data):
        b.PrependUint8(byte)
    payload = b.EndVector()
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(1, payload, 0)
    custom = b.EndObject()
    sub_name, sub_description = b.CreateString(info.name), b.CreateString(info.contract)
    inputs, outputs, customs = (_offsets(b, [tensors[0]]), _offsets(b, [tensors[1]]), _offsets(b, [custom]))
    b.StartObject(10)  # SubGraphMetadata
    b.PrependUOffsetTRelativeSlot(0, sub_name, 0)
    b.PrependUOffsetTRelativeSlot(1, sub_description, 0)
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    b.PrependUOffsetTRelativeSlot(9, customs, 0)
    subgraphs = _offsets(b, [b.EndObject()])
    strings = [b.CreateString(s) for s in (info.name, info.description, info.version, info.author, info.license,
                                            info.min_parser_version)]
    b.StartObject(8)  # ModelMetadata
    for slot, offset in zip((0, 1, 2, 4, 5, 7), strings):
        b.PrependUOffsetTRelativeSlot(slot, offset, 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.Finish(b.EndObject(), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def add_metadata(model: bytes, info: ModelInfo) -> bytes:
    """`model` (TFLite flatbuffer bytes) with `info` as its TFLITE_METADATA (replacing any there)."""
    return put_buffer(model, METADATA_NAME, metadata_buffer(info))


def read_metadata(model: bytes) -> ModelInfo | None:
    """The metadata `add_metadata` wrote into `model` (TFLite bytes); None when it has none.

    Raises ValueError when the TFLITE_METADATA buffer is not a metadata flatbuffer (no M001)."""
    data = read_buffer(model, METADATA_NAME)
    return None if data is None else _parse(data)


def _parse(buf: bytes) -> ModelInfo:
    if not flatbuffers.util.BufferHasIdentifier(buf, 0, FILE_IDENTIFIER):
        raise ValueError(f"{METADATA_NAME} buffer is not TFLite model metadata "
                         f"(no {FILE_IDENTIFIER.decode()} identifier)")
    model = Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    subgraphs = _tables(model, 3)
    subgraph = subgraphs[0] if subgraphs else None
    tiling: dict[str, Any] = {}
    inputs = outputs = [TensorInfo("", "")]
    contract = ""
    if subgraph is not None:
        contract = _string(subgraph, 1)
        inputs = [_tensor_info(t) for t in _tables(subgraph, 2)] or inputs
        outputs = [_tensor_info(t) for t in _tables(subgraph, 3)] or outputs
        for custom in _tables(subgraph, 9):
            if _string(custom, 0) == TILING_NAME:
                o = custom.Offset(6)
                tiling = json.loads(custom.GetVectorAsNumpy(types.Uint8Flags, o).tobytes()) if o else {}
    return ModelInfo(name=_string(model, 0), description=_string(model, 1), version=_string(model, 2),
                     author=_string(model, 4), license=_string(model, 5), input=inputs[0], output=outputs[0],
                     contract=contract, tiling=tiling, min_parser_version=_string(model, 7))


def _tensor(b: flatbuffers.Builder, t: TensorInfo) -> int:
    """A TensorMetadata table: name, description, Content (ImageProperties RGB), normalization, stats."""
    name, description = b.CreateString(t.name), b.CreateString(t.description)
    size = None
    if t.size is not None:
        b.StartObject(2)  # ImageSize
        b.PrependUint32Slot(0, int(t.size[1]), 0)
        b.PrependUint32Slot(1, int(t.size[0]), 0)
        size = b.EndObject()
    b.StartObject(2)  # ImageProperties
    b.PrependUint8Slot(0, _RGB, 0)
    if size is not None:
        b.PrependUOffsetTRelativeSlot(1, size, 0)
    properties = b.EndObject()
    b.StartObject(3)  # Content: union type (slot 0), union value (slot 1), range (slot 2)
    b.PrependUint8Slot(0, _IMAGE_PROPERTIES, 0)
    b.PrependUOffsetTRelativeSlot(1, properties, 0)
    content = b.EndObject()
    units = None
    if t.mean or t.std:
        mean, std = _floats(b, t.mean), _floats(b, t.std)
        b.StartObject(2)  # NormalizationOptions
        b.PrependUOffsetTRelativeSlot(0, mean, 0)
        b.PrependUOffsetTRelativeSlot(1, std, 0)
        normalization = b.EndObject()
        b.StartObject(2)  # ProcessUnit: options type (slot 0), options (slot 1)
        b.PrependUint8Slot(0, _NORMALIZATION_OPTIONS, 0)
        b.PrependUOffsetTRelativeSlot(1, normalization, 0)
        units = _offsets(b, [b.EndObject()])
    high, low = _floats(b, t.max), _floats(b, t.min)
    b.StartObject(2)  # Stats
    b.PrependUOffsetTRelativeSlot(0, high, 0)
    b.PrependUOffsetTRelativeSlot(1, low, 0)
    stats = b.EndObject()
    b.StartObject(7)  # TensorMetadata
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(1, description, 0)
    b.PrependUOffsetTRelativeSlot(3, content, 0)
    if units is not None:
        b.PrependUOffsetTRelativeSlot(4, units, 0)
    b.PrependUOffsetTRelativeSlot(5, stats, 0)
    return b.EndObject()


def _tensor_info(t: Table) -> TensorInfo:
    info = TensorInfo(_string(t, 0), _string(t, 1))
    content = _table(t, 3)
    if content is not None and _scalar(content, 0, types.Uint8Flags) == _IMAGE_PROPERTIES:
        properties = Table(bytearray(), 0)
        content.Union(properties, content.Offset(6))
        size = _table(properties, 1)
        if size is not None:
            info.size = (_scalar(size, 1, types.Uint32Flags), _scalar(size, 0, types.Uint32Flags))
    for unit in _tables(t, 4):
        if _scalar(unit, 0, types.Uint8Flags) == _NORMALIZATION_OPTIONS:
            options = Table(bytearray(), 0)
            unit.Union(options, unit.Offset(6))
            info.mean, info.std = _float_list(options, 0), _float_list(options, 1)
    stats = _table(t, 5)
    if stats is not None:
        info.max, info.min = _float_list(stats, 0), _float_list(stats, 1)
    return info


def _floats(b: flatbuffers.Builder, values: list[float]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _offsets(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


__all__ = ["METADATA_NAME", "TILING_NAME", "MIN_PARSER_VERSION", "TensorInfo", "ModelInfo", "describe",
           "with_metadata", "metadata_buffer", "add_metadata", "read_metadata", "put_buffer", "read_buffer"]
