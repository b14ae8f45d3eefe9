"""DPED's generators and discriminators, one form per source; the recipes (dped_recipes.py) name them.

Generators (image [B, H, W, 3] in [0, 1] -> enhanced image, any H and W, stride 1):
- 'official' (aiff22/DPED models.py:4-56): 9x9 conv, four residual blocks with instance norm,
  two 3x3 convs, a 9x9 conv and tanh * 0.58 + 0.5; layers conv1..conv12, norm2..norm9 (the
  names the checkpoint import of export/official_dped.py loads into).
- 'paper' (the ICCV 2017 text): the same with batch norm in the residual blocks.
- 'rebalanced' (JuheonYi/DPED-TensorFlow DPED.py:71-103): no normalization, three 3x3 convs
  after the blocks, a linear 1x1 conv head; works on (img - mean_RGB) / 255 (ops.py:8-9).
- 'plain' (ours; WESPE and the demo): no normalization, two 3x3 convs, 9x9 conv, head.

Discriminators (grayscale [B, patch, patch, 1] -> scores; the dense size follows the patch):
- 'official' (models.py:59-82): conv -> LeakyReLU(0.2) -> instance norm (conv2..5), fc 1024,
  2-way softmax [B, 2] (real, fake);
- 'paper': conv -> LeakyReLU -> batch norm (training mode), fc 1024, one logit [B, 1];
- 'rebalanced' (DPED.py:141-178): conv -> batch norm -> LeakyReLU, the batch norm in its
  inference mode for good (tf.layers.batch_normalization without training=True: moving mean 0
  and variance 1 never updated, so a learned per-channel affine gamma / sqrt(1 + 1e-3), beta),
  fc 1024, one logit [B, 1].
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from phone2dslr.trainer.blocks import batch_norm, residual_block
from phone2dslr.trainer.instance_norm import InstanceNormalization

HEADS = ("tanh", "conv1x1")
GENERATORS = ("official", "paper", "rebalanced", "plain")
DISCRIMINATORS = ("official", "paper", "rebalanced")
INITS = ("official", "glorot")
OUTPUT_SCALE, OUTPUT_OFFSET = 0.58, 0.5  # models.py:54
MEAN_RGB = (123.68, 116.779, 103.939)  # rebalanced ops.py:6 (and official vgg.py:5)
DEFAULT_PATCH_SIZE = 100  # DPED's training patches (train_model.py:18-19)


def initializers(init: str) -> dict[str, Any]:
    """Conv / dense initializers: 'official' = truncated normal (stddev 0.01, cut at 2 stddev) and
    bias 0.01 (models.py:85-94, :144, :72-78); 'glorot' = Xavier uniform and zero bias (rebalanced
    DPED.py:74 xavier_initializer, tf.layers defaults; also the Keras defaults)."""
    if init == "official":
        # Configs, not instances: Keras deserialises a fresh initializer per layer (one unseeded
        # instance shared by layers would give every same-shaped kernel the same values).
        return {"kernel_initializer": {"class_name": "TruncatedNormal", "config": {"stddev": 0.01}},
                "bias_initializer": {"class_name": "Constant", "config": {"value": 0.01}}}
    if init == "glorot":
        return {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}
    raise ValueError(f"initializer {init!r} is not one of {', '.join(INITS)}")


def _head(x: tf.Tensor, inputs: tf.Tensor, head: str, global_skip: bool, out_kernel: int | None,
          init: dict[str, Any], out_bias: tuple[float, ...] | None, conv_name: str) -> tf.Tensor:
    """The output head. out_kernel: a last conv to 3 channels before the head (9 in DPED), or None
    (the head's own 1x1 conv is the last layer, as rebalanced). out_bias: added to the 1x1 head's
    initial bias (rebalanced: mean_RGB / 255, so the output is in [0, 1] units)."""
    if global_skip and head != "conv1x1":
        raise ValueError("global_skip needs the conv1x1 head (tanh's output is absolute, not a correction)")
    if head not in HEADS:
        raise ValueError(f"generator head {head!r} is not one of {', '.join(HEADS)}")
    if out_kernel:
        x = keras.layers.Conv2D(3, out_kernel, padding="same", name=conv_name, **init)(x)
    if head == "tanh":
        if not out_kernel:
            x = keras.layers.Conv2D(3, 1, name=conv_name, **init)(x)
        x = keras.layers.Activation("tanh", name="tanh")(x)
        return keras.layers.Rescaling(OUTPUT_SCALE, offset=OUTPUT_OFFSET, name="enhanced")(x)
    if global_skip:
        # Zero-initialised: the untrained generator is exactly the identity, never worse than the input.
        x = keras.layers.Conv2D(3, 1, kernel_initializer="zeros", name="correction")(x)
        return keras.layers.Add(name="enhanced")([inputs, x])
    bias = init["bias_initializer"]
    if out_bias is not None:
        # (source output) + mean == a 1x1 conv whose bias starts `mean` higher: the same function
        # under the same updates, since a bias's gradient does not depend on its value.
        start = 0.01 if init["bias_initializer"] != "zeros" else 0.0
        bias = keras.initializers.Constant([start + b for b in out_bias])
    return keras.layers.Conv2D(3, 1, name="enhanced", kernel_initializer=init["kernel_initializer"],
                               bias_initializer=bias)(x)


def build_generator(filters: int = 64, head: str = "conv1x1", num_blocks: int = 4, name: str = "generator",
                    global_skip: bool = False, norm: str = "none", post_convs: int = 2,
                    out_kernel: int | None = 9, init: str = "glorot", input_mean: tuple[float, ...] | None = None
                    ) -> keras.Model:
    """Image -> enhanced image: 9x9 conv + ReLU, `num_blocks` residual blocks (norm 'none' |
    'batch' | 'instance'), `post_convs` 3x3 convs + ReLU, then `_head`. Defaults: 'plain', the
    receptive field 37 px.

    head 'tanh': tanh(x) * 0.58 + 0.5 as the official code (range [-0.08, 1.08]); 'conv1x1': a
    learned 1x1 convolution, linear. global_skip (conv1x1 only; not in any source): the network
    predicts a zero-initialised correction added to the input (the demo's choice for CPU minutes).
    input_mean: RGB in [0, 1] subtracted from the input and added back by the linear head (the
    rebalanced source works on (img - mean_RGB) / 255). Raises ValueError for unknown choices.
    """
    init_kw = initializers(init)
    inputs = keras.Input((None, None, 3), name="phone")
    x = inputs
    if input_mean is not None:
        x = keras.layers.Normalization(mean=list(input_mean), variance=[1.0] * 3, name="input_shift")(x)
    x = keras.layers.Conv2D(filters, 9, padding="same", activation="relu", name="conv_in", **init_kw)(x)
    for i in range(num_blocks):
        x = residual_block(x, filters, name=f"res{i + 1}", norm=norm, **init_kw)
    for i in range(post_convs):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv_post{i + 1}",
                                **init_kw)(x)
    out_bias = tuple(input_mean) if input_mean is not None else None
    return keras.Model(inputs, _head(x, inputs, head, global_skip, out_kernel, init_kw, out_bias, "conv_out"),
                       name=name)


def build_official_generator(filters: int = 64, name: str = "dped_official", head: str = "tanh",
                             global_skip: bool = False, init: str = "official") -> keras.Model:
    """The official generator (models.py:4-56), layers named for its checkpoint variables:

        c1 = relu(conv1(x))
        for k in 1..4:  c2k = relu(IN(conv2k(c2k-1)));  c2k+1 = relu(IN(conv2k+1(c2k))) + c2k-1
        c10 = relu(conv10(c9));  c11 = relu(conv11(c10));  enhanced = tanh(conv12(c11)) * 0.58 + 0.5

    head / global_skip as `build_generator` (conv1x1 replaces tanh after conv12).
    """
    init_kw = initializers(init)

    def conv(x: tf.Tensor, i: int, out: int = filters, kernel: int = 3) -> tf.Tensor:
        return keras.layers.Conv2D(out, kernel, padding="same", name=f"conv{i}", **init_kw)(x)

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
    return keras.Model(inputs, _head(c, inputs, head, global_skip, 9, init_kw, None, "conv12"), name=name)


def generator_for(form: str, filters: int, head: str, global_skip: bool = False,
                  name: str = "generator") -> keras.Model:
    """The generator a recipe names (GENERATORS), with the config's width, head and global skip."""
    if form == "official":
        return build_official_generator(filters, name=name, head=head, global_skip=global_skip)
    if form == "paper":
        return build_generator(filters, head, name=name, global_skip=global_skip, norm="batch", init="official")
    if form == "rebalanced":
        return build_generator(filters, head, name=name, global_skip=global_skip, post_convs=3, out_kernel=None,
                               input_mean=tuple(m / 255.0 for m in MEAN_RGB))
    if form == "plain":
        return build_generator(filters, head, name=name, global_skip=global_skip)
    raise ValueError(f"DPED generator {form!r} is not one of {', '.join(GENERATORS)}")


def build_discriminator(patch_size: int = DEFAULT_PATCH_SIZE, form: str = "paper",
                        name: str = "discriminator") -> keras.Model:
    """Grayscale [patch, patch, 1] -> scores (see the module docstring for each form).

    Convs 48 11x11 /4, 128 5x5 /2, 192 3x3, 192 3x3, 128 3x3 /2 ('SAME'), fc 1024 + LeakyReLU(0.2);
    the dense input size follows from patch_size (stride 16 overall; the official code fixes
    128 * 7 * 7 for 100 px, models.py:69), so build one per training patch size.
    """
    if form not in DISCRIMINATORS:
        raise ValueError(f"DPED discriminator {form!r} is not one of {', '.join(DISCRIMINATORS)}")
    init_kw = initializers("glorot" if form == "rebalanced" else "official")

    def conv(x: tf.Tensor, filters: int, kernel: int, stride: int, i: int) -> tf.Tensor:
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", name=f"conv{i}", **init_kw)(x)
        if i == 1:  # no normalization after the first conv in either code base
            return keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
        if form == "rebalanced":  # BN -> lrelu (DPED.py:152-153), fixed in inference mode
            x = batch_norm(f"norm{i}", epsilon=1e-3)(x, training=False)
            return keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)  # lrelu -> norm (models.py:111-115)
        if form == "official":
            return InstanceNormalization(name=f"norm{i}")(x)
        return batch_norm(f"norm{i}", epsilon=1e-3)(x)

    inputs = keras.Input((patch_size, patch_size, 1), name="gray")
    x = conv(inputs, 48, 11, 4, 1)
    x = conv(x, 128, 5, 2, 2)
    x = conv(x, 192, 3, 1, 3)
    x = conv(x, 192, 3, 1, 4)
    x = conv(x, 128, 3, 2, 5)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu_fc")(keras.layers.Dense(1024, name="fc", **init_kw)(x))
    if form == "official":
        x = keras.layers.Dense(2, name="logits", **init_kw)(x)
        return keras.Model(inputs, keras.layers.Softmax(name="probabilities")(x), name=name)
    return keras.Model(inputs, keras.layers.Dense(1, name="logit", **init_kw)(x), name=name)
