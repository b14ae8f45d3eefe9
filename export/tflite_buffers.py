"""Named data in a TFLite model: the model's metadata entries, each naming one of its buffers.

The TFLite schema's own place for data that is not a tensor: `Model.metadata` maps a name to a buffer.
The converter writes "min_runtime_version" there, TFLite Support its "TFLITE_METADATA" flatbuffer
(export/tflite_metadata.py), and a streamable file its stream plan, "phone2dslr.stream"
(export/tflite_stages.py). Read and written with LiteRT's generated schema classes; no TensorFlow.
"""
from __future__ import annotations

import flatbuffers
import numpy as np


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
    """The data of the model metadata entry `name` in `model` (TFLite bytes); None without one."""
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(bytes(model), 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if _text(entry.Name()) == name:
            return root.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None


def _text(value: bytes | str | None) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else (value or "")


__all__ = ["put_buffer", "read_buffer"]
