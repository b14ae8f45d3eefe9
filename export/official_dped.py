"""The authors' pre-trained DPED generators (aiff22/DPED `models_orig/<phone>_orig`) as a Keras model.

Their TF1 checkpoint holds `generator/W1..W12`, `generator/b1..b12` (W1 9x9x3xF, W2..W11 3x3xFxF,
W12 9x9xFx3; F = 64) and, for each of the eight residual-block convs W2..W9, an instance norm's
shift and scale ([F] each), created in that order as `generator/Variable`, `generator/Variable_1`,
... The network (stride-1 'SAME' convs, input RGB in [0, 1]):

    c1 = relu(conv1(x))
    for k in 1..4:  c2k = relu(IN(conv2k(c2k-1)));  c2k+1 = relu(IN(conv2k+1(c2k))) + c2k-1
    c10 = relu(conv10(c9));  c11 = relu(conv11(c10))
    enhanced = tanh(conv12(c11)) * 0.58 + 0.5
    IN(x) = (x - mean) / sqrt(var + 1e-3) * scale + shift, mean and var per channel over H, W

The network is trainer/dped_networks.build_official_generator (the official-code recipe trains
it). It normalizes over the whole image: export/tiling.py streams it exactly, each layer once
(Keras, export/streamed_norm.py); its float32 and float16 TFLite files carry stage signatures
(export/tflite_stages.py) that `enhance` streams on LiteRT (export/streamed_tflite.py), the other
variants run on the whole image. Extra variables in the checkpoint (discriminator, optimizer slots) are ignored.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

# The network and its instance norm live in the trainer, which also trains it (recipe official-code).
from phone2dslr.trainer.dped_networks import OUTPUT_OFFSET, OUTPUT_SCALE, build_official_generator  # noqa: F401
from phone2dslr.trainer.instance_norm import EPSILON, InstanceNormalization  # noqa: F401

SCOPE = "generator"
NUM_CONVS = 12
NORMALIZED = tuple(range(2, 10))  # W2..W9: the residual blocks' convs


class OfficialCheckpointError(ValueError):
    """The checkpoint is missing, or lacks / mis-shapes a generator variable (one-line message)."""


def build_generator(filters: int = 64, name: str = "dped_official") -> keras.Model:
    """The official generator's architecture (random Keras-default weights, replaced on import);
    layers conv1..conv12, norm2..norm9."""
    return build_official_generator(filters, name=name, init="glorot")


def norm_variable(j: int) -> str:
    """Checkpoint name of the j-th unnamed generator variable (TF1 numbering: Variable, Variable_1, ...)."""
    return f"{SCOPE}/Variable" if j == 0 else f"{SCOPE}/Variable_{j}"


def expected_shapes(filters: int = 64) -> dict[str, list[int]]:
    """Every generator variable the import needs, with its shape."""
    shapes: dict[str, list[int]] = {}
    for i in range(1, NUM_CONVS + 1):
        cin = 3 if i == 1 else filters
        cout = 3 if i == NUM_CONVS else filters
        k = 9 if i in (1, NUM_CONVS) else 3
        shapes[f"{SCOPE}/W{i}"] = [k, k, cin, cout]
        shapes[f"{SCOPE}/b{i}"] = [cout]
    for j in range(2 * len(NORMALIZED)):
        shapes[norm_variable(j)] = [filters]
    return shapes


def read_checkpoint(path: str) -> dict[str, np.ndarray]:
    """The generator's variables from a TF1 checkpoint (prefix such as models_orig/iphone_orig, or a
    folder with a `checkpoint` file), validated; OfficialCheckpointError names what is wrong."""
    try:
        reader = tf.train.load_checkpoint(path)
    except (ValueError, tf.errors.OpError) as e:
        hint = f"{path}.index" if not os.path.isdir(path) else f"a 'checkpoint' file in {path}"
        raise OfficialCheckpointError(f"no TF checkpoint at {path} (looked for {hint}): "
                                      f"{type(e).__name__}") from None
    available = reader.get_variable_to_shape_map()
    first = available.get(f"{SCOPE}/W1")
    filters = int(first[-1]) if first is not None and len(first) == 4 else 64
    expected = expected_shapes(filters)
    missing = [n for n in expected if n not in available]
    if missing:
        raise OfficialCheckpointError(f"checkpoint {path} is not an official DPED generator: missing "
                                      f"{_names(missing)}")
    wrong = [f"{n} {list(available[n])} (expected {s})" for n, s in expected.items() if list(available[n]) != s]
    if wrong:
        raise OfficialCheckpointError(f"checkpoint {path} has mis-shaped variables: {'; '.join(wrong)}")
    return {name: reader.get_tensor(name) for name in expected}


def load_generator(path: str) -> keras.Model:
    """Build the Keras generator and load the official checkpoint's weights into it."""
    variables = read_checkpoint(path)
    filters = int(variables[f"{SCOPE}/W1"].shape[-1])
    model = build_generator(filters)
    for i in range(1, NUM_CONVS + 1):
        model.get_layer(f"conv{i}").set_weights([variables[f"{SCOPE}/W{i}"], variables[f"{SCOPE}/b{i}"]])
    for n, i in enumerate(NORMALIZED):  # shift created before scale, one pair per normalized conv
        shift, scale = variables[norm_variable(2 * n)], variables[norm_variable(2 * n + 1)]
        model.get_layer(f"norm{i}").set_weights([shift, scale])
    return model


def export(checkpoint: str, out_dir: str, variants: Sequence[str] = ("float32",),
           min_parity_psnr: float = 40.0, threads: int = 2) -> dict[str, Any]:
    """Import the checkpoint and write `<out_dir>/saved_model` (`enhance_image`, `enhance_bytes`) and
    `<out_dir>/<variant>.tflite` for each variant that converts and matches the SavedModel.

    Parity is checked on one synthetic 96x128 image (no photos are needed for this step); a variant
    below `min_parity_psnr` dB is written under rejected/. Returns paths and per-variant results.
    """
    from phone2dslr.export import tflite_checks, tflite_convert
    from phone2dslr.trainer.serving import export_image_generator

    model = load_generator(checkpoint)
    saved_model_dir = os.path.join(out_dir, "saved_model")
    export_image_generator(model, saved_model_dir)
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    probe = np.stack([yy / 95, xx / 127, 0.5 + 0.4 * np.sin((xx + yy) / 9)], -1)[np.newaxis]
    reference = tflite_convert.SavedModelEnhancer(saved_model_dir)(probe)
    results: dict[str, Any] = {}
    for variant in variants:
        try:
            content = tflite_convert.convert(saved_model_dir, variant,  # float32/float16: streamable
                                             representative_images=[probe] if variant == "int8" else None)
        except tflite_convert.TFLiteExportError as e:  # this variant fails; the others go on
            results[variant] = {"file": None, "passed": False, "reason": f"not converted: {e}"}
            continue
        result = tflite_checks.evaluate_variant(variant, content, [reference], [tflite_checks.EvalImage(probe)],
                                                min_parity_psnr, latency_size=(96, 128), threads=threads,
                                                latency_runs=1)
        name = f"{variant}.tflite" if result.passed else os.path.join("rejected", f"{variant}.tflite")
        tf.io.gfile.makedirs(os.path.dirname(os.path.join(out_dir, name)))
        with tf.io.gfile.GFile(os.path.join(out_dir, name), "wb") as f:
            f.write(content)
        results[variant] = {"file": os.path.join(out_dir, name), "passed": result.passed, "reason": result.reason}
    return {"saved_model": saved_model_dir, "filters": model.get_layer("conv1").filters, "tflite": results}


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
