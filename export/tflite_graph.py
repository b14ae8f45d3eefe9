"""What a `.tflite` file's graph says about tiling: its receptive-field radius, read without TensorFlow.

The flatbuffer is read with LiteRT's own generated schema classes (ai_edge_litert.schema_py_generated),
so `phone2dslr enhance` can tile a TFLite model with LiteRT alone. The walk is the one of
export/tiling.py's `graph_radius` for TensorFlow graphs: along the longest path from the input,
each stride-1 'SAME' convolution adds its reach on the wider side, ceil(dilation * (kernel - 1) / 2),
pointwise ops add nothing, and any other op (a reduction over the image such as instance
normalization's MEAN, a reshape, a strided or 'VALID' convolution, an op we do not know) makes the
model not tileable exactly (NotTileableError naming the op). Models of other shapes (strided
encoders, U-Nets: most mobile-challenge models) are not walked: their tiling contract can come from
the model's metadata (export/tflite_metadata.py) or the user (`enhance --overlap`).
"""
from __future__ import annotations

from phone2dslr.export.tflite_runtime import read_bytes
from phone2dslr.export.tiles import NotTileableError

_TFL_POINTWISE = {
    "ADD", "SUB", "MUL", "DIV", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "TANH", "LOGISTIC",
    "MAXIMUM", "MINIMUM", "QUANTIZE", "DEQUANTIZE", "ABS", "NEG", "SQRT", "RSQRT", "SQUARE",
    "SQUARED_DIFFERENCE", "EXP", "LOG", "POW", "LEAKY_RELU", "PRELU", "HARD_SWISH", "ELU", "GELU", "CAST",
}
_TFL_CONV = {"CONV_2D", "DEPTHWISE_CONV_2D"}
_TFL_GLOBAL = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "FULLY_CONNECTED", "RESHAPE",
               "TRANSPOSE", "BATCH_MATMUL"}


def not_tileable(op: str, name: str, global_ops: set[str]) -> NotTileableError:
    """The error for an op the radius walk cannot pass: one that mixes all positions, or an unknown one."""
    if op in global_ops:
        return NotTileableError(f"op {op} ({name}) mixes all positions (e.g. instance normalization)")
    return NotTileableError(f"op {op} ({name}) has unknown spatial extent")


def tflite_radius(model: str | bytes) -> int:
    """Receptive-field radius (pixels) of a TFLite model's first subgraph, walked in op order.

    `model` is a path or the flatbuffer bytes. Raises NotTileableError (naming the op) for a model
    whose output at a pixel is not a function of a bounded, stride-1 neighbourhood (see module doc).
    """
    from ai_edge_litert import schema_py_generated as schema

    content = model if isinstance(model, (bytes, bytearray)) else read_bytes(model)
    root = schema.Model.GetRootAs(bytes(content), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = root.Subgraphs(0)
    radius = {int(i): 0 for i in graph.InputsAsNumpy()}
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        code = root.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = [int(i) for i in op.InputsAsNumpy() if i >= 0] if op.InputsLength() else []
        if name in _TFL_POINTWISE:
            extent = 0
        elif name in _TFL_CONV:
            table = op.BuiltinOptions()
            options = (schema.Conv2DOptions() if name == "CONV_2D" else schema.DepthwiseConv2DOptions())
            options.Init(table.Bytes, table.Pos)
            kh, kw = [int(v) for v in graph.Tensors(inputs[1]).ShapeAsNumpy()[1:3]]
            same = options.Padding() == schema.Padding.SAME or kh == kw == 1
            if options.StrideH() != 1 or options.StrideW() != 1 or not same:
                raise NotTileableError(f"op {name} (#{index}) is not stride-1 SAME")
            dh, dw = options.DilationHFactor(), options.DilationWFactor()
            extent = max(dh * (kh - 1) - dh * (kh - 1) // 2, dw * (kw - 1) - dw * (kw - 1) // 2)
        else:
            raise not_tileable(name, f"#{index}", _TFL_GLOBAL)
        reach = extent + max([radius.get(i, 0) for i in inputs], default=0)
        for o in op.OutputsAsNumpy():
            radius[int(o)] = reach
    return max(radius.get(int(o), 0) for o in graph.OutputsAsNumpy())


__all__ = ["tflite_radius", "not_tileable"]
