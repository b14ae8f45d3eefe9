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

Unlike the project's own generator (trainer/dped.py, no normalization), this one normalizes over
the whole image: export/tiling.py tiles it exactly in passes (Keras), while its exported SavedModel
and TFLite files run on the whole image. Extra variables in the checkpoint (discriminator, optimizer
slots) are ignored.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

SCOPE = "generator"
EPSILON = 1e-3
NUM_CONVS = 12
NORMALIZED = tuple(range(2, 10))  # W2..W9: the residual blocks' convs
OUTPUT_SCALE, OUTPUT_OFFSET = 0.58, 0.5


class OfficialCheckpointError(ValueError):
    """The checkpoint is missing, or lacks / mis-shapes a generator variable (one-line message)."""


class InstanceNormalization(keras.layers.Layer):
    """DPED's instance norm: per image and channel over H and W, (x - mean) / sqrt(var + eps) * scale + shift."""

    def __init__(self, epsilon: float = EPSILON, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape: Any) -> None:
        channels = int(input_shape[-1])
        self.shift = self.add_weight(name="shift", shape=[channels], initializer="zeros")
        self.scale = self.add_weight(name="scale", shape=[channels], initializer="ones")
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        return (x - mean) / tf.sqrt(var + self.epsilon) * self.scale + self.shift

    def fixed_stats(self, mean: np.ndarray, var: np.ndarray) -> keras.layers.Layer:
        """This normalization with given statistics: a pointwise per-channel affine (export/tiling.py)."""
        gain = self.scale.numpy().astype(np.float64) / np.sqrt(np.asarray(var, np.float64) + self.epsilon)
        offset = self.shift.numpy().astype(np.float64) - np.asarray(mean, np.float64) * gain
        return keras.layers.Rescaling(gain.astype(np.float32), offset=offset.astype(np.float32),
                                      name=f"{self.name}_fixed")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


def build_generator(filters: int = 64, name: str = "dped_official") -> keras.Model:
    """The official generator's architecture (random weights); layers conv1..conv12, norm2..norm9."""
    def conv(x: tf.Tensor, i: int, out: int = filters, kernel: int = 3) -> tf.Tensor:
        return keras.layers.Conv2D(out, kernel, padding="same", name=f"conv{i}")(x)

    inputs = keras.Input((None, None, 3), name="image")
    c = keras.layers.ReLU(name="relu1")(conv(inputs, 1, kernel=9))
    skip = c
    for block in range(4):
        i = 2 + 2 * block
        c = keras.layers.ReLU(name=f"relu{i}")(InstanceNormalization(name=f"norm{i}")(conv(c, i)))
        c = keras.layers.ReLU(name=f"relu{i + 1}")(InstanceNormalization(name=f"norm{i + 1}")(conv(c, i + 1)))
        c = keras.layers.Add(name=f"skip{i + 1}")([c, skip])
        skip = c
    c = keras.layers.ReLU(name="relu10")(conv(c, 10))
    c = keras.layers.ReLU(name="relu11")(conv(c, 11))
    c = keras.layers.Activation("tanh", name="tanh")(conv(c, 12, out=3, kernel=9))
    outputs = keras.layers.Rescaling(OUTPUT_SCALE, offset=OUTPUT_OFFSET, name="enhanced")(c)
    return keras.Model(inputs, outputs, name=name)


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
    from phone2dslr.export import tflite
    from phone2dslr.trainer.serving import export_image_generator

    model = load_generator(checkpoint)
    saved_model_dir = os.path.join(out_dir, "saved_model")
    export_image_generator(model, saved_model_dir)
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    probe = np.stack([yy / 95, xx / 127, 0.5 + 0.4 * np.sin((xx + yy) / 9)], -1)[np.newaxis]
    reference = tflite.SavedModelEnhancer(saved_model_dir)(probe)
    results: dict[str, Any] = {}
    for variant in variants:
        content = tflite.convert(saved_model_dir, variant,
                                 representative_images=[probe] if variant == "int8" else None)
        result = tflite.evaluate_variant(variant, content, [reference], [tflite.EvalImage(probe)],
                                         min_parity_psnr, latency_size=(96, 128), threads=threads, latency_runs=1)
        name = f"{variant}.tflite" if result.passed else os.path.join("rejected", f"{variant}.tflite")
        tf.io.gfile.makedirs(os.path.dirname(os.path.join(out_dir, name)))
        with tf.io.gfile.GFile(os.path.join(out_dir, name), "wb") as f:
            f.write(content)
        results[variant] = {"file": os.path.join(out_dir, name), "passed": result.passed, "reason": result.reason}
    return {"saved_model": saved_model_dir, "filters": model.get_layer("conv1").filters, "tflite": results}


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
