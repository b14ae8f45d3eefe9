"""Streamable TFLite for instance-normalized generators: one signature per stage, run tiled on LiteRT.

A `.tflite` of the official DPED generator cannot be tiled like a local model: its instance norms
(trainer/instance_norm.py, aiff22/DPED models.py:120-132) take statistics over the whole photo. So
`convert_streamable` writes, next to the usual whole-image `enhance_image` signature (what an app
that runs whole photos calls, and what the parity checks run), one signature per stage of the
stage plan (export/stream_plan.py): `stage_0`, `stage_1`, ... Each is the stage's layers with

- inputs: the stage's input tensors as windows [1, h, w, C] float32 (any h, w), named by the
  plan's tensor names (`t0` is the photo), and for each normalization that opens the stage its
  whole-image statistics `mean<j>` and `var<j>` [C] float32 (j: the normalization's index);
- outputs: the tensors later stages read (same names, the whole window), for each normalization
  whose input the stage completes the per-row moments of that input over the window's width,
  `rowmean<j>` / `rowvar<j>` [1, h, 1, C], and in the last stage the model output `image`.

`stage_<k>_float16` is the same stage taking and giving the tensors kept between stages as float16
(the photo, statistics and output stay float32), for `--storage float16`: the conversions then run
in the graph, where XNNPACK does them (NumPy's float16 casts took 1.2 ns a value here, and made
float16 storage 50% slower than float32).

Nothing is cropped inside the graph and the moments reduce over the width only: so every op of a
stage is one the XNNPACK delegate runs (measured on this machine, a 64-channel 3x3 stage band of
66x2048: 25 ms for the convolution on LiteRT against 39 ms in TensorFlow; cropping and 3-D moments
in the graph fell back to LiteRT's reference kernels and took 100 ms). The plan itself (which
tensors each stage reads and stores, its halo) goes into the model's metadata as the JSON of a
`StreamSpec` (export/stream_spec.py), under the entry STREAM_NAME; export/streamed_tflite.py reads
it and runs the file on LiteRT alone.

A normalization that opens a stage is `layer.normalize(x, mean, var)`, the layer's own formula at
given statistics; the plan's `fixed_stats` is its NumPy twin.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Callable

import tensorflow as tf
import tf_keras as keras

from phone2dslr.export.stream_plan import Plan, Stage, plan, run_nodes
from phone2dslr.export.stream_spec import STREAM_NAME, stage_key
from phone2dslr.export.streamed_tflite import check_streaming
from phone2dslr.export.tflite_buffers import put_buffer
from phone2dslr.export.tflite_runtime import INPUT_KEY, TFLiteExportError
from phone2dslr.export.tiles import NotTileableError
from phone2dslr.trainer.serving import IMAGE_SIGNATURE, OUTPUT_KEY

STREAM_VARIANTS = ("float32", "float16")  # int8 quantizes activations per band or with fixed ranges: not exact


def _stage_signature(p: Plan, stage: Stage, names: dict[str, str], norm_index: dict[int, int],
                     storage: tf.DType = tf.float32) -> Callable[..., Any]:
    """The stage as a tf.function of named tensors (module docstring); the tensors kept between
    stages come in and go out as `storage` (the photo, statistics and output stay float32)."""
    inputs = list(stage.inputs)
    opens = list(stage.opens)
    specs = [tf.TensorSpec([1, None, None, p.channels[t]], tf.float32 if t == p.input_id else storage, name=names[t])
             for t in inputs]
    for norm in opens:
        j = norm_index[id(norm)]
        specs += [tf.TensorSpec([norm.channels], tf.float32, name=f"mean{j}"),
                  tf.TensorSpec([norm.channels], tf.float32, name=f"var{j}")]
    by_output = {norm.output_id: norm for norm in opens}

    def run(*args: tf.Tensor) -> dict[str, tf.Tensor]:
        values = {t: tf.cast(v, tf.float32) for t, v in zip(inputs, args[:len(inputs)])}
        stats = {norm.output_id: (args[len(inputs) + 2 * k], args[len(inputs) + 2 * k + 1])
                 for k, norm in enumerate(opens)}
        run_nodes(stage, values, lambda out, x: by_output[out].layer.normalize(x, *stats[out]))
        outputs = {names[t]: tf.cast(values[t], storage) for t in stage.stores}
        for norm in stage.stats:
            j = norm_index[id(norm)]
            outputs[f"rowmean{j}"], outputs[f"rowvar{j}"] = tf.nn.moments(values[norm.input_id], axes=[2],
                                                                          keepdims=True)
        if stage.final:
            outputs["image"] = values[p.output_id]
        return outputs

    return tf.function(run, input_signature=specs)


def stage_signatures(model: keras.Model) -> dict[str, Callable[..., Any]]:
    """`stage_<k>` -> the stage's tf.function, for every stage of the model's plan, and
    `stage_<k>_float16`: the same with the tensors kept between stages in float16.

    Raises NotTileableError when the model has no stage plan, or a normalization no
    `normalize(x, mean, var)` method."""
    p = plan(model)
    for norm in p.norms:
        if not hasattr(norm.layer, "normalize"):
            raise NotTileableError(f"normalization {norm.layer.name} has no normalize(x, mean, var)")
    names, norm_index = p.names(), p.norm_index()  # as in the spec the file carries
    return {stage_key(s.index, storage): _stage_signature(p, s, names, norm_index, getattr(tf, storage))
            for storage in ("float32", "float16") for s in p.stages}


def convert_streamable(model: keras.Model, variant: str = "float32") -> bytes:
    """The model as a streamable TFLite file (flatbuffer bytes): `enhance_image` (whole photo,
    float32 [1, H, W, 3] in [0, 1], clipped) and the stage signatures, the StreamSpec as metadata.

    variant: float32, or float16 (float16 weights, float32 kernels on the CPU). Raises ValueError
    for another variant, NotTileableError when the model cannot be streamed, TFLiteExportError when
    a signature is lost in conversion or the stages do not reproduce the whole-image output
    (streamed_tflite.check_streaming)."""
    if variant not in STREAM_VARIANTS:
        raise ValueError(f"a streamable TFLite is {' or '.join(STREAM_VARIANTS)}, not {variant!r}")
    stages = stage_signatures(model)

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name=INPUT_KEY)])
    def enhance_image(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_KEY: tf.clip_by_value(model(image, training=False), 0.0, 1.0)}

    module = tf.Module()
    module.model = model  # its variables are saved with the signatures
    signatures = {IMAGE_SIGNATURE: enhance_image, **stages}
    for key, fn in signatures.items():
        setattr(module, key, fn)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "streamable")
        tf.saved_model.save(module, path, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=list(signatures))
        if variant == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        content = converter.convert()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    missing = set(signatures) - set(interpreter.get_signature_list())
    if missing:
        raise TFLiteExportError(f"signatures {', '.join(sorted(missing))} were lost in conversion")
    if interpreter._interpreter.GetSubgraphIndexFromSignature(IMAGE_SIGNATURE) != 0:
        # tflite_graph and the metadata describe the first subgraph: it must be the whole-image one
        raise TFLiteExportError(f"{IMAGE_SIGNATURE} is not the first subgraph of the streamable file")
    content = put_buffer(content, STREAM_NAME, plan(model).spec().to_json().encode("utf-8"))
    try:
        check_streaming(content)
    except ValueError as e:  # the stages do not reproduce enhance_image: this variant fails
        raise TFLiteExportError(f"streamable {variant}: {e}") from None
    return content


__all__ = ["STREAM_VARIANTS", "stage_signatures", "convert_streamable"]
