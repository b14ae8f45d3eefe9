"""Named data in a TFLite model: the model's metadata entries, each naming one of its buffers.

The TFLite schema's own place for data that is not a tensor: `Model.metadata` maps a name to a buffer.
The converter writes "min_runtime_version" there, TFLite Support its "TFLITE_METADATA" flatbuffer
(export/tflite_metadata.py), and a streamable file its stream plan, "phone2dslr.stream"
(export/tflite_stages.py). Read and written with LiteRT's generated schema classes; no TensorFlow.
"""
from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np
from flatbuffers import number_types as types
from flatbuffers.table import Table


def put_buffer(model: bytes, name: str, data: bytes) -> bytes:
    """`model` (TFLite bytes) with `data` in a buffer named by the model metadata entry `name`
    (replacing one of that name): the schema's place for named data, e.g. TFLITE_METADATA."""
    from ai_edge_litert import schema_py_generated as schema

    obj = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, np.uint8)
    obj.metadata = list(obj.metadata or [])
    entry = next((m for m in obj.metadata if _text(m.name) == name), None)
    if entry is None:
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(obj.buffers)
        obj.buffers.append(buffer)
        obj.metadata.append(entry)
    else:
        obj.buffers[entry.buffer] = buffer
    b = flatbuffers.Builder(len(model) + len(data) + 4096)
    b.Finish(obj.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def read_buffer(model: bytes, name: str) -> bytes | None:
    """The data of the model metadata entry `name` in `model` (TFLite bytes); None without one.

    Read with the flatbuffers runtime alone: importing LiteRT's generated schema classes costs
    38 MiB of memory, which `enhance` on a large photo cannot spare (tflite_schema.fbs: Model.buffers
    is field 4, Model.metadata 6; Metadata.name 0, .buffer 1; Buffer.data 0, or .offset 1 and .size
    2 for a buffer stored after the flatbuffer)."""
    buf = bytes(model)
    root = Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    for entry in field_tables(root, 6):
        if field_string(entry, 0) == name:
            buffer = field_tables(root, 4)[field_scalar(entry, 1, types.Uint32Flags)]
            o = buffer.Offset(4)
            if o:
                return buffer.GetVectorAsNumpy(types.Uint8Flags, o).tobytes()
            offset, size = field_scalar(buffer, 1, types.Uint64Flags), field_scalar(buffer, 2, types.Uint64Flags)
            return buf[offset:offset + size] if offset > 1 else b""
    return None


def signature_names(model: bytes) -> dict[str, tuple[set[str], set[str]]]:
    """Signature key -> (input names, output names) of a TFLite model (tflite_schema.fbs:
    Model.signature_defs is field 7; SignatureDef.inputs 0, .outputs 1, .signature_key 2;
    TensorMap.name 0), read like `read_buffer`."""
    buf = bytes(model)
    root = Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    return {field_string(sig, 2): ({field_string(m, 0) for m in field_tables(sig, 0)},
                                   {field_string(m, 0) for m in field_tables(sig, 1)})
            for sig in field_tables(root, 7)}


def field_string(t: Table, slot: int) -> str:
    """String field number `slot` of table `t` ("" when absent)."""
    o = t.Offset(4 + 2 * slot)
    return t.String(o + t.Pos).decode("utf-8") if o else ""


def field_scalar(t: Table, slot: int, flags: Any) -> int:
    """Integer field number `slot` of `t` (0 when absent), `flags` its flatbuffers number type."""
    o = t.Offset(4 + 2 * slot)
    return int(t.Get(flags, o + t.Pos)) if o else 0


def field_table(t: Table, slot: int) -> Table | None:
    """Table field number `slot` of `t` (None when absent)."""
    o = t.Offset(4 + 2 * slot)
    return Table(t.Bytes, t.Indirect(o + t.Pos)) if o else None


def field_tables(t: Table, slot: int) -> list[Table]:
    """Vector-of-tables field number `slot` of `t` ([] when absent)."""
    o = t.Offset(4 + 2 * slot)
    if not o:
        return []
    start = t.Vector(o)
    return [Table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(t.VectorLen(o))]


def field_floats(t: Table, slot: int) -> list[float]:
    """float32 vector field number `slot` of `t` ([] when absent)."""
    o = t.Offset(4 + 2 * slot)
    return [float(v) for v in t.GetVectorAsNumpy(types.Float32Flags, o)] if o else []


def _text(value: bytes | str | None) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else (value or "")


__all__ = ["put_buffer", "read_buffer", "signature_names", "field_string", "field_scalar", "field_table",
           "field_tables", "field_floats"]
