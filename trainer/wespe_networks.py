"""WESPE's networks besides DPED's generator: the discriminators of each source, and Wespe-Keras'
generator. Each discriminator holds its own input preprocessing (a frozen blur or gray
convolution), so a training step hands it plain [B, H, W, 3] images in [0, 1].

paper        D_c, D_t = DPED's discriminator (WESPE Sec. 3.2-3.3 take it from DPED Sec. 3.2): five
             convolutions 11x11x48 /4, 5x5x128 /2, 3x3x192, 3x3x192, 3x3x128 /2, each followed by
             LeakyReLU(0.2) and (all but the first) batch normalisation, a 1024-unit dense layer, and
             one logit (sigmoid probability). Its dense layer fixes the patch size.
wespe-keras  modelwithVGGloss.py:223-289: blur (23x23 DepthwiseConv2D) or gray (1x1 Conv2D), frozen;
             x -> 2x - 1; PatchGAN 5x5x64 /2, 5x5x128 /2 +BN, 5x5x256 /2 +BN, 3x3x512 /2 +BN,
             3x3x512 +BN, 3x3x1 (LeakyReLU 0.2 after each hidden conv); any size, [B, ceil(H/16), ., 1].
             Generator :167-220: 2x - 1, 9x9 conv (ReLU, then LeakyReLU), 4 residual blocks
             (conv-BN-LeakyReLU twice, then + input), three 3x3 conv + LeakyReLU, 9x9 conv to 3,
             0.5 tanh + 0.5. All convs RandomNormal(0.02) initialised (:171, 183, 258).
"""
from __future__ import annotations

import numpy as np
import tf_keras as keras

from phone2dslr.trainer.blocks import batch_norm
from phone2dslr.trainer.dped_networks import initializers
from phone2dslr.trainer.wespe_losses import GRAY_WEIGHTS

PREPROCESS = ("blur", "gray")


def _init() -> keras.initializers.Initializer:
    # One instance per layer: an unseeded tf_keras initializer reused returns the same values.
    return keras.initializers.RandomNormal(stddev=0.02)


def _preprocess(x, preprocess: str, blur_kernel: np.ndarray, name: str):
    """Frozen input filter: 'blur' (per-channel, zero 'same' padding) -> 3 channels, 'gray' -> 1.

    Always float32: the filter is part of the loss's definition (the colour loss compares blurred
    images), and a 21x21 depthwise blur in bfloat16 is both rounded and, on CPUs, very slow.
    """
    if preprocess == "blur":
        layer = keras.layers.DepthwiseConv2D(blur_kernel.shape[0], padding="same", use_bias=False,
                                             trainable=False, name=f"{name}_blur", dtype="float32")
        y = layer(x)
        layer.set_weights([np.tile(blur_kernel[:, :, None, None], (1, 1, 3, 1)).astype(np.float32)])
        return y
    if preprocess == "gray":
        layer = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name=f"{name}_gray", dtype="float32")
        y = layer(x)
        layer.set_weights([np.asarray(GRAY_WEIGHTS, np.float32).reshape(1, 1, 3, 1)])
        return y
    raise ValueError(f"discriminator preprocessing {preprocess!r} is not one of {', '.join(PREPROCESS)}")


def build_dped_discriminator(preprocess: str, blur_kernel: np.ndarray, patch_size: int,
                             name: str = "discriminator") -> keras.Model:
    """[B, patch, patch, 3] in [0, 1] -> [B, 1] logit, after the frozen `preprocess` filter.

    The paper's D_c / D_t (DPED's discriminator). patch_size must be the training patch side
    (the dense layer's input size follows from it); ValueError for a patch under 16 pixels.
    """
    if patch_size < 16:
        raise ValueError(f"the paper's discriminator needs patches of at least 16 pixels, got {patch_size}")
    init = initializers("official")  # the text gives none: DPED models.py:85-94 (as dped_networks 'paper')
    inputs = keras.Input((patch_size, patch_size, 3), name="image")
    x = _preprocess(inputs, preprocess, blur_kernel, name)
    for i, (filters, kernel, stride) in enumerate(((48, 11, 4), (128, 5, 2), (192, 3, 1), (192, 3, 1),
                                                    (128, 3, 2)), start=1):
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", name=f"conv{i}", **init)(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
        if i > 1:
            x = batch_norm(f"bn{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu_fc")(keras.layers.Dense(1024, name="fc", **init)(x))
    return keras.Model(inputs, keras.layers.Dense(1, name="logit", **init)(x), name=name)


def build_wespe_keras_discriminator(preprocess: str, blur_kernel: np.ndarray,
                                    name: str = "discriminator") -> keras.Model:
    """[B, H, W, 3] in [0, 1] -> [B, ceil(H/16), ceil(W/16), 1] linear scores (LSGAN), any size."""
    inputs = keras.Input((None, None, 3), name="image")
    x = _preprocess(inputs, preprocess, blur_kernel, name)
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_tanh_range")(x)
    for i, (filters, kernel, stride) in enumerate(((64, 5, 2), (128, 5, 2), (256, 5, 2), (512, 3, 2),
                                                    (512, 3, 1)), start=1):
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", kernel_initializer=_init(),
                                name=f"conv{i}")(x)
        if i > 1:
            x = batch_norm(f"bn{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
    scores = keras.layers.Conv2D(1, 3, padding="same", kernel_initializer=_init(), name="patch_scores")(x)
    return keras.Model(inputs, scores, name=name)


def build_wespe_keras_generator(filters: int = 64, head: str = "tanh", num_blocks: int = 4,
                                global_skip: bool = False, name: str = "generator") -> keras.Model:
    """[B, H, W, 3] in [0, 1] -> [B, H, W, 3], any size; receptive field 39 pixels.

    head 'tanh': 0.5 tanh(x) + 0.5, in (0, 1) (the source's). Our demo extras, as
    dped.build_generator: 'conv1x1' (a learned 1x1 colour matrix, linear output) and global_skip
    (conv1x1 only: a zero-initialised correction added to the input). ValueError otherwise.
    """
    if head not in ("tanh", "conv1x1"):
        raise ValueError(f"generator head {head!r} is not one of tanh, conv1x1")
    if global_skip and head != "conv1x1":
        raise ValueError("global_skip needs the conv1x1 head (tanh's output is absolute, not a correction)")
    def conv(x, n, k, layer_name, activation=None):
        return keras.layers.Conv2D(n, k, padding="same", activation=activation, kernel_initializer=_init(),
                                   name=layer_name)(x)

    inputs = keras.Input((None, None, 3), name="phone")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_tanh_range")(inputs)
    # ReLU then LeakyReLU, as written (:187-189); the LeakyReLU is then the identity.
    x = keras.layers.LeakyReLU(0.2, name="conv_in_lrelu")(conv(x, filters, 9, "conv_in", "relu"))
    for i in range(1, num_blocks + 1):
        y = x
        for j in (1, 2):
            y = conv(y, filters, 3, f"res{i}_conv{j}")
            y = batch_norm(f"res{i}_bn{j}")(y)
            y = keras.layers.LeakyReLU(0.2, name=f"res{i}_lrelu{j}")(y)
        x = keras.layers.Add(name=f"res{i}_add")([y, x])
    for j in (1, 2, 3):
        x = keras.layers.LeakyReLU(0.2, name=f"conv_post{j}_lrelu")(conv(x, filters, 3, f"conv_post{j}"))
    x = conv(x, 3, 9, "conv_out")
    if head == "tanh":
        x = keras.layers.Rescaling(0.5, offset=0.5, name="enhanced")(keras.layers.Activation("tanh", name="tanh")(x))
    elif global_skip:
        x = keras.layers.Conv2D(3, 1, kernel_initializer="zeros", name="correction")(x)
        x = keras.layers.Add(name="enhanced")([inputs, x])
    else:
        x = keras.layers.Conv2D(3, 1, name="enhanced")(x)
    return keras.Model(inputs, x, name=name)


def build_patch_discriminator(channels: int, filters: int = 32, strided_layers: int = 3,
                              name: str = "patch_discriminator") -> keras.Model:
    """Our own small PatchGAN (no source): [H, W, channels] -> [H/2^n, W/2^n, 1] scores, any size.

    4x4 convolutions, `strided_layers` of stride 2 doubling from `filters`, LeakyReLU(0.2); with
    n = 3 its receptive field is pix2pix's 70 pixels. Kept as a receptive-field reference.
    """
    inputs = keras.Input((None, None, channels), name="image")
    x = inputs
    for i in range(strided_layers):
        x = keras.layers.Conv2D(filters * 2 ** i, 4, strides=2, padding="same", name=f"conv{i + 1}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i + 1}")(x)
    x = keras.layers.Conv2D(filters * 2 ** strided_layers, 4, padding="same", name="conv_last")(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu_last")(x)
    return keras.Model(inputs, keras.layers.Conv2D(1, 4, padding="same", name="score")(x), name=name)
