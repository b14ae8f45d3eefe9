"""Trainer entries that export fixed, untrained generators of known quality, for the gate tests.

The test data's phone side is `PHONE_GAIN * dslr + PHONE_OFFSET`; `improving_run_fn` exports the
exact inverse (a model that must be blessed), `degrading_run_fn` one that brightens everything
further (a model that must not). Both go through the real export path (Transform graph and all
signatures), so the Evaluator, TFLite export and Pusher see a normal Trainer output.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow_transform as tft
import tf_keras as keras

from phone2dslr.trainer.serving import export_generator

PHONE_GAIN = 0.7
PHONE_OFFSET = 0.1


def _export_linear(fn_args: Any, gain: float, offset: float) -> None:
    inputs = keras.Input((None, None, 3), name="phone")
    conv = keras.layers.Conv2D(3, 1, name="enhanced")
    generator = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.eye(3, dtype=np.float32)[None, None] * gain, np.full([3], offset, np.float32)])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    export_generator(generator, fn_args.serving_model_dir, tf_transform_output.transform_features_layer(),
                     tf_transform_output.raw_feature_spec())


def improving_run_fn(fn_args: Any) -> None:
    _export_linear(fn_args, 1.0 / PHONE_GAIN, -PHONE_OFFSET / PHONE_GAIN)


def degrading_run_fn(fn_args: Any) -> None:
    _export_linear(fn_args, 1.0, 0.25)
