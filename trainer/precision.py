"""Mixed precision for the GAN trainers: the Keras policy, loss scaling, float32 where it matters.

`train.precision` names a Keras mixed-precision policy (Micikevicius et al., "Mixed Precision
Training", ICLR 2018; the Keras guide "Mixed precision"):
- `float32`: every layer computes and stores in float32 (the default; nothing changes).
- `mixed_bfloat16`: layers compute in bfloat16, variables stay float32. bfloat16 keeps float32's
  exponent range, so gradients need no loss scaling. Fast on GPUs from Ampere on and TPUs; on
  CPUs without bf16 units it is emulated and slower (bench/train_bench.py measures it).
- `mixed_float16`: layers compute in float16 (tensor cores from Volta on); float16's small range
  underflows small gradients, so every optimizer is wrapped in a dynamic LossScaleOptimizer and
  each train step seeds its gradients with the loss scale (`apply_loss`).

What stays float32 under both mixed policies (the models cast at these points, `as_float32`):
every network's output before it enters a loss (generator images, discriminator logits, the VGG
features compared by the content loss), the losses themselves, the metrics, and the exported
generator (`float32_model`): serving, TFLite and TFMA see the same float32 network as before.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import tensorflow as tf
import tf_keras as keras

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


class PrecisionError(ValueError):
    """A precision name that is not a policy the trainers support (one line)."""


def check(precision: str) -> str:
    """The precision name if supported; raises PrecisionError otherwise."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"train.precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def policy(precision: str) -> Iterator[None]:
    """Build layers under `precision`'s Keras policy, then restore the previous global policy.

    Layers take the global policy when they are created, so models built inside keep it; the
    process-wide default is left as it was (other models in the same process stay float32).
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(check(precision))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def as_float32(x: tf.Tensor) -> tf.Tensor:
    """A network's output, cast to float32 before a loss or metric sees it (no-op when float32)."""
    return tf.cast(x, tf.float32)


def is_mixed(model: keras.Model) -> bool:
    """Whether any layer of `model` computes in a dtype other than float32."""
    return any(layer.dtype_policy.compute_dtype != "float32" for layer in model.layers)


def float32_clone(model: keras.Model) -> keras.Model:
    """A new copy of the functional `model` with every layer in float32 and the same weights.

    The weights are float32 under every policy (mixed policies keep variables in float32), so the
    copy computes what `model` would in float32, with nothing rounded on the way.
    """
    def float32_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    with policy("float32"):
        copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def float32_model(model: keras.Model) -> keras.Model:
    """`model` itself when it computes in float32, else its float32_clone (what gets exported)."""
    return float32_clone(model) if is_mixed(model) else model


def optimizer(inner: keras.optimizers.Optimizer, precision: str) -> keras.optimizers.Optimizer:
    """`inner`, wrapped in a dynamic LossScaleOptimizer for mixed_float16 (initial scale 2^15,
    doubled after 2000 finite steps, halved and the step skipped on inf/NaN gradients: the Keras
    defaults); unchanged for float32 and mixed_bfloat16."""
    if check(precision) == "mixed_float16":
        return keras.mixed_precision.LossScaleOptimizer(inner)
    return inner


def apply_loss(opt: keras.optimizers.Optimizer, tape: tf.GradientTape, loss: tf.Tensor,
               variables: Sequence[tf.Variable]) -> None:
    """One optimizer step on d loss / d variables, taken from `tape` (recorded by the caller).

    With a LossScaleOptimizer the backward pass is seeded with the loss scale (the gradient of
    scale x loss, computed without re-recording the loss) and the gradients are unscaled before
    the update, which the optimizer skips when they are not finite.
    """
    if isinstance(opt, keras.mixed_precision.LossScaleOptimizer):
        seed = tf.cast(opt.loss_scale, loss.dtype)
        grads = opt.get_unscaled_gradients(tape.gradient(loss, variables, output_gradients=seed))
    else:
        grads = tape.gradient(loss, variables)
    opt.apply_gradients(zip(grads, variables))
