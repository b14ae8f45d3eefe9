"""Content features: VGG-19 truncated at a named layer, from local weights only, or plain pixels.

Nothing is ever downloaded. `vgg19` content needs one of
- a Keras weights file: legacy `.h5` (e.g. Keras' vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5,
  or any `save_weights(...h5)` of VGG19 or of its first layers; matched by layer name), or a
  `.weights.h5` saved from the whole `VGG19(include_top=False)` by Keras 2 or 3;
- a TF-Hub module directory (a TF2 SavedModel) mapping RGB images in [0, 1] ([B, H, W, 3], the
  TF-Hub image convention, so the module does its own preprocessing) to a feature map, or to a
  dict of feature maps keyed by layer name (the truncation layer is then picked from it);
- MatConvNet's imagenet-vgg-verydeep-19.mat, the file the official DPED code uses (a `.mat` path;
  built by vgg_matconvnet.py with that code's RGB preprocessing and 'SAME' max pooling).
A missing or unusable path raises ContentWeightsError with a one-line message.
`pixel` content is the identity: the content loss becomes a pixel MSE (demo, tests).
"""
from __future__ import annotations

import os
import sys
import types
import warnings

import h5py
import tensorflow as tf
import tf_keras as keras

DPED_LAYER = "block5_conv4"  # relu5_4 (the conv layer carries its ReLU)
WESPE_LAYER = "block2_conv2"  # relu2_2
_IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)


class ContentWeightsError(ValueError):
    """Content-network weights that are not configured, not there, or do not fit."""


def vgg_preprocess(images: tf.Tensor) -> tf.Tensor:
    """[0, 1] RGB -> VGG 'caffe' input: x255, RGB->BGR, minus ImageNet BGR means."""
    bgr = tf.reverse(tf.cast(images, tf.float32) * 255.0, axis=[-1])
    return bgr - tf.constant(_IMAGENET_BGR_MEANS, tf.float32)


def _frozen(model: keras.Model) -> keras.Model:
    model.trainable = False
    return model


def _legacy_h5_layers(path: str) -> dict[str, int]:
    """Layer name -> number of weights stored, for a legacy (Keras 2 `.h5`) weights file."""
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        if "layer_names" not in group.attrs:
            raise ContentWeightsError(f"VGG weights file {path} is HDF5 but holds no Keras layer weights")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["layer_names"]]
        return {n: len(group[n].attrs.get("weight_names", [])) for n in names}


def vgg19_features(weights_path: str, layer: str = DPED_LAYER) -> keras.Model:
    """Frozen VGG-19 from a local Keras weights file, [0, 1] RGB -> activations of `layer`."""
    if not os.path.isfile(weights_path):
        raise ContentWeightsError(f"VGG weights file not found: {weights_path}")
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    try:
        truncated = keras.Model(vgg.input, vgg.get_layer(layer).output, name=f"vgg19_{layer}")
    except ValueError:
        raise ContentWeightsError(f"VGG-19 has no layer {layer!r}") from None
    try:
        if weights_path.endswith(".weights.h5"):
            vgg.load_weights(weights_path)  # Keras 3 format: the whole VGG19(include_top=False)
        elif weights_path.endswith(".h5"):
            stored = _legacy_h5_layers(weights_path)
            missing = [l.name for l in truncated.layers if l.weights and stored.get(l.name) != len(l.weights)]
            if missing:
                raise ContentWeightsError(f"VGG weights file {weights_path} lacks layer(s) {', '.join(missing)}")
            truncated.load_weights(weights_path, by_name=True)
        else:
            raise ContentWeightsError(f"VGG weights {weights_path}: expected a .h5 / .weights.h5 / .mat "
                                      "file or a TF-Hub module directory")
    except ContentWeightsError:
        raise
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ContentWeightsError(f"cannot load VGG weights from {weights_path}: {first}") from None
    inputs = keras.Input((None, None, 3), name="image")
    features = truncated(keras.layers.Lambda(vgg_preprocess, name="vgg_preprocess")(inputs))
    return _frozen(keras.Model(inputs, features, name=f"content_vgg19_{layer}"))


def import_hub() -> types.ModuleType:
    """Import tensorflow_hub 0.15 (the version TFX 1.21 pins) on TensorFlow 2.21.

    Its package __init__ imports tensorflow_hub.estimator, which needs tf.compat.v1.estimator,
    removed from TensorFlow 2.16+. When that is the only failure, the Estimator exporter API
    (unused here) is replaced by a stand-in that raises if called, and the import is retried.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        try:
            import tensorflow_hub as hub
        except ImportError as e:
            if "estimator" not in str(e):
                raise

            def unavailable(*args, **kwargs):
                raise RuntimeError("tensorflow_hub's Estimator API needs tf.estimator, gone in TF 2.16+")

            stub = types.ModuleType("tensorflow_hub.estimator")
            stub.LatestModuleExporter = stub.register_module_for_export = unavailable
            sys.modules["tensorflow_hub.estimator"] = stub
            import tensorflow_hub as hub
    return hub


def hub_features(module_dir: str, layer: str | None = None) -> keras.Model:
    """Frozen feature extractor from a local TF-Hub module (TF2 SavedModel) directory."""
    hub = import_hub()  # imported here: only this path needs it

    if not os.path.isfile(os.path.join(module_dir, "saved_model.pb")):
        raise ContentWeightsError(f"TF-Hub module directory {module_dir} has no saved_model.pb")
    inputs = keras.Input((None, None, 3), name="image")
    try:
        features = hub.KerasLayer(module_dir, trainable=False, name="hub_features")(inputs)
        if isinstance(features, dict):
            if layer not in features:
                raise ContentWeightsError(f"TF-Hub module {module_dir} outputs {sorted(features)}, "
                                          f"not {layer!r}")
            inputs = keras.Input((None, None, 3), name="image")
            features = hub.KerasLayer(module_dir, trainable=False, output_key=layer,
                                      name="hub_features")(inputs)
    except ContentWeightsError:
        raise
    except Exception as e:  # hub / SavedModel loading raises many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ContentWeightsError(f"cannot load TF-Hub module {module_dir}: {first}") from None
    return _frozen(keras.Model(inputs, features, name="content_hub"))


def pixel_features() -> keras.Model:
    """Identity 'features': the content loss is then a pixel MSE. Needs no pretrained network."""
    inputs = keras.Input((None, None, 3), name="image")
    return _frozen(keras.Model(inputs, keras.layers.Activation("linear", name="pixels")(inputs),
                               name="content_pixel"))


def content_model(content: str, weights: str = "", layer: str = DPED_LAYER) -> keras.Model:
    """The content feature extractor for TrainConfig.content / vgg_weights.

    content: 'pixel' | 'vgg19'. For 'vgg19', `weights` is a local Keras .h5 / .weights.h5 file, a
    MatConvNet .mat file (imagenet-vgg-verydeep-19.mat) or a TF-Hub module directory.
    """
    if content == "pixel":
        return pixel_features()
    if content != "vgg19":
        raise ContentWeightsError(f"content {content!r} is not one of vgg19, pixel")
    if not weights:
        raise ContentWeightsError("content 'vgg19' needs a local VGG weights file or TF-Hub module "
                                  "(train.vgg_weights; nothing is downloaded), or use content: pixel")
    if os.path.isdir(weights):
        return hub_features(weights, layer)
    if weights.lower().endswith(".mat"):
        from phone2dslr.trainer.vgg_matconvnet import matconvnet_features  # it imports this module
        return matconvnet_features(weights, layer)
    return vgg19_features(weights, layer)
