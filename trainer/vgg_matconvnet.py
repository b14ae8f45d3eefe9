"""VGG-19 content features from MatConvNet's imagenet-vgg-verydeep-19.mat, the file DPED's README asks for.

Restates aiff22/DPED vgg.py `net()` / `preprocess()` (used at train_model.py:75) as a frozen Keras model:
- input [0, 1] RGB x 255, minus IMAGE_MEAN (123.68, 116.779, 103.939) in RGB order (vgg.py:5, 51-52);
  no BGR swap: this VGG was converted to take RGB. The file's own average image (`normalization` in
  the old release, `meta.normalization` in the new one) is ignored, as the official code ignores it;
  the constants are that image's per-channel mean.
- each conv's kernel as MatConvNet stores it (3 x 3 x in x out; its vl_nnconv.m documents FW x FH x
  FC x K) transposed (1, 0, 2, 3) to TensorFlow's [kh, kw, in, out], bias reshaped to [out]
  (vgg.py:32-34); 3x3 stride-1 'SAME' conv + bias, ReLU after each conv (vgg.py:37, 44-46); 2x2
  stride-2 max pooling with 'SAME' padding (vgg.py:48-49), so odd sizes round up
  (100 -> 50 -> 25 -> 13 -> 7), where Keras' VGG19 ('valid') rounds down (25 -> 12).
JuheonYi/DPED-TensorFlow vgg19.py builds the same net (its DPED.py:113 feeds x 255 without the mean).

File structure (scipy.io.loadmat): `layers` is a 1 x 43 cell of structs, conv1_1 ... relu5_4, pool5,
fc6 ... prob. A conv struct's `weights` is a 1 x 2 cell {kernel 3 x 3 x in x out float32, bias}. Field
order differs between releases (old: weights first, which the official `weights[i][0][0][0][0]`
relies on; new: name, type, weights, ...), so fields are read by name; a struct without `weights`
falls back to `filters` / `biases` (early MatConvNet), then to its first field (the official positional
form); a file without `name` fields is read by position in the VGG-19 layer list, as the official code.
"""
from __future__ import annotations

import os
import re

import numpy as np
import scipy.io
import tensorflow as tf
import tf_keras as keras

from phone2dslr.errors import one_line
from phone2dslr.trainer.vgg import DPED_LAYER, ContentWeightsError

IMAGE_MEAN_RGB = (123.68, 116.779, 103.939)  # DPED vgg.py:5, RGB order
# The 43 entries of MatConvNet's VGG-19 `layers` cell, in file order (DPED vgg.py:9-22, then the head).
VGG19_LAYERS = (
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
    "fc6", "relu6", "fc7", "relu7", "fc8", "prob",
)
_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}  # output channels of each block's convs


def matconvnet_preprocess(images: tf.Tensor) -> tf.Tensor:
    """[B, H, W, 3] RGB in [0, 1] -> x 255 minus the RGB ImageNet mean, float32 (DPED vgg.py:51-52)."""
    return tf.cast(images, tf.float32) * 255.0 - tf.constant(IMAGE_MEAN_RGB, tf.float32)


def matconvnet_layer_name(layer: str) -> str:
    """Keras VGG19 layer name -> MatConvNet's: block5_conv4 -> relu5_4 (the Keras conv carries its ReLU),
    block2_pool -> pool2. MatConvNet relu / pool names pass through. Raises ContentWeightsError otherwise.
    """
    conv = re.fullmatch(r"block(\d)_conv(\d)", layer)
    pool = re.fullmatch(r"block(\d)_pool", layer)
    name = f"relu{conv[1]}_{conv[2]}" if conv else f"pool{pool[1]}" if pool else layer
    if name not in VGG19_LAYERS[:VGG19_LAYERS.index("fc6")] or name.startswith("conv"):
        raise ContentWeightsError(f"VGG-19 has no layer {layer!r} (use a Keras name such as block5_conv4 "
                                  "or a MatConvNet relu / pool name such as relu5_4)")
    return name


def _text(value: np.ndarray) -> str | None:
    """A MATLAB char array as loaded by scipy (array(['conv1_1'])) -> 'conv1_1'; None if not text."""
    value = np.asarray(value)
    return str(value.ravel()[0]) if value.size == 1 and value.dtype.kind == "U" else None


def _records(path: str, data: dict) -> list[np.void]:
    """The layer structs of `data['layers']`, a 1 x N cell of structs as in the real file."""
    if "layers" not in data:
        raise ContentWeightsError(f"VGG weights file {path} holds no 'layers' variable: "
                                  "not a MatConvNet network")
    layers = np.asarray(data["layers"])
    if layers.dtype != object:
        raise ContentWeightsError(f"VGG weights file {path}: 'layers' is not a cell of MatConvNet "
                                  "layer structs")
    records = []
    for i, item in enumerate(layers.ravel()):
        item = np.asarray(item)
        if not item.dtype.names or item.size != 1:
            raise ContentWeightsError(f"VGG weights file {path}: 'layers' entry {i + 1} is not a "
                                      "MatConvNet layer struct")
        records.append(item.ravel()[0])
    return records


def _kernel_and_bias(record: np.void) -> tuple[np.ndarray, np.ndarray] | None:
    """(kernel as stored, bias) of a conv struct, or None when it holds no pair of arrays."""
    fields = record.dtype.names
    if "filters" in fields and "biases" in fields and "weights" not in fields:
        pair = [record["filters"], record["biases"]]
    else:  # by name, else the official positional form weights[i][0][0][0][0]
        cell = np.asarray(record["weights"] if "weights" in fields else record[0])
        pair = list(cell.ravel()) if cell.dtype == object else []
    if len(pair) != 2 or not all(isinstance(p, np.ndarray) and p.dtype.kind == "f" for p in pair):
        return None
    return pair[0], pair[1]


def read_matconvnet_convs(path: str, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The conv layers `names` (e.g. ['conv1_1', 'conv1_2']) of a MatConvNet VGG-19 .mat file.

    Returns name -> (kernel [3, 3, in, out] float32 in TensorFlow layout, i.e. the stored kernel
    transposed (1, 0, 2, 3) as DPED vgg.py:33; bias [out] float32).
    Raises ContentWeightsError (one line, naming `path`) when the file is missing or unreadable, holds
    no `layers`, lacks one of the layers, or a kernel / bias does not have VGG-19's shape.
    """
    if not os.path.isfile(path):
        raise ContentWeightsError(f"VGG weights file not found: {path}")
    try:  # only `layers`: the average image and class names are not used
        data = scipy.io.loadmat(path, variable_names=["layers"])
    except Exception as e:  # scipy raises ValueError, MatReadError, NotImplementedError (v7.3 HDF5) ...
        raise ContentWeightsError(f"cannot read MatConvNet file {path}: {one_line(e)}") from None
    records = _records(path, data)
    if all("name" in r.dtype.names for r in records):
        by_name = {_text(r["name"]): r for r in records}
    else:  # no names: the official code's fixed positions
        by_name = dict(zip(VGG19_LAYERS, records))
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ContentWeightsError(f"VGG weights file {path} lacks layer(s) {', '.join(missing)} "
                                  "(is it MatConvNet's imagenet-vgg-verydeep-19.mat?)")
    convs = {}
    for name in names:
        record = by_name[name]
        kind = _text(record["type"]) if "type" in record.dtype.names else "conv"
        params = _kernel_and_bias(record) if kind == "conv" else None
        if params is None:
            raise ContentWeightsError(f"VGG weights file {path}: layer {name} is not a conv layer with "
                                      "a kernel and a bias")
        block, index = int(name[4]), int(name[6])  # conv<block>_<index>
        fan_in = _CHANNELS[block] if index > 1 else _CHANNELS.get(block - 1, 3)  # conv1_1 takes RGB
        expected = (3, 3, fan_in, _CHANNELS[block])
        kernel, bias = params
        if kernel.shape != expected or bias.size != expected[-1]:
            raise ContentWeightsError(f"VGG weights file {path}: layer {name} has kernel {kernel.shape} and "
                                      f"bias of {bias.size}, VGG-19 needs {expected} and {expected[-1]}")
        convs[name] = (np.transpose(kernel, (1, 0, 2, 3)).astype(np.float32),
                       bias.reshape(-1).astype(np.float32))
    return convs


def matconvnet_features(path: str, layer: str = DPED_LAYER) -> keras.Model:
    """Frozen VGG-19 from a MatConvNet .mat file, truncated at `layer`.

    path: imagenet-vgg-verydeep-19.mat (either release). layer: a Keras VGG19 name (block5_conv4 =
    relu5_4, DPED's content layer; block2_conv2 = relu2_2, WESPE's) or a MatConvNet relu / pool name.
    Returns a model [B, H, W, 3] float RGB in [0, 1] -> [B, ceil(H / 2^p), ceil(W / 2^p), C] float32
    activations, p = pooling layers passed; only the layers up to `layer` are built and read.
    Raises ContentWeightsError (one line) for an unknown layer or a file that does not fit.
    """
    target = matconvnet_layer_name(layer)
    names = VGG19_LAYERS[:VGG19_LAYERS.index(target) + 1]
    convs = read_matconvnet_convs(path, [n for n in names if n.startswith("conv")])
    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Lambda(matconvnet_preprocess, name="matconvnet_preprocess")(inputs)
    for name in names:
        if name.startswith("conv"):
            kernel, bias = convs[name]
            conv = keras.layers.Conv2D(kernel.shape[-1], 3, padding="same", name=name)
            x = conv(x)
            conv.set_weights([kernel, bias])
        elif name.startswith("relu"):
            x = keras.layers.ReLU(name=name)(x)
        else:  # 'SAME' as DPED vgg.py:49, not Keras VGG19's 'valid'
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=name)(x)
    model = keras.Model(inputs, x, name=f"content_vgg19_mat_{target}")
    model.trainable = False
    return model
