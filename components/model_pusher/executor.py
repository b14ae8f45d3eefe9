"""TFX's Pusher, plus the TFLite files: `<serving_dir>/<version>/` holds the SavedModel and
`tflite/` with every variant that passed its checks and `tflite_results.json`.

The base executor decides (blessing) and versions (unix timestamp); this one only adds the
phone models to the version it wrote, so TF Serving and mobile teams read one versioned folder.
"""
from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
from tfx.components.pusher import executor as pusher_executor
from tfx.types import artifact_utils

from phone2dslr.export import tflite_checks

TFLITE_MODELS_KEY = "tflite_models"
PUSHED_MODEL_KEY = "pushed_model"
TFLITE_DIR = "tflite"


def _copy_shipped(source_dir: str, dest_dir: str) -> list[str]:
    """Copy the top-level (passed) .tflite files and the results; returns the variants copied."""
    results = tflite_checks.read_results(source_dir)
    shipped = [v for v in results.get("shipped", [])
               if tf.io.gfile.exists(os.path.join(source_dir, f"{v}.tflite"))]
    tf.io.gfile.makedirs(dest_dir)
    for variant in shipped:
        tf.io.gfile.copy(os.path.join(source_dir, f"{variant}.tflite"),
                         os.path.join(dest_dir, f"{variant}.tflite"), overwrite=True)
    tf.io.gfile.copy(os.path.join(source_dir, tflite_checks.RESULTS_FILE),
                     os.path.join(dest_dir, tflite_checks.RESULTS_FILE), overwrite=True)
    return shipped


class Executor(pusher_executor.Executor):
    """Push like TFX's Pusher, then add the shipped TFLite variants beside the SavedModel."""

    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]],
           exec_properties: dict[str, Any]) -> None:
        tflite_models = input_dict.pop(TFLITE_MODELS_KEY, [])
        super().Do(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
        if not pushed.get_int_custom_property("pushed") or not tflite_models:
            return
        source = artifact_utils.get_single_instance(tflite_models).uri
        destination = pushed.get_string_custom_property("pushed_destination")
        shipped = []
        for root in (destination, pushed.uri):  # the serving folder and the artifact's archive copy
            shipped = _copy_shipped(source, os.path.join(root, TFLITE_DIR))
        pushed.set_string_custom_property("tflite_variants", ",".join(shipped))
        pushed.set_string_custom_property("tflite_dir", os.path.join(destination, TFLITE_DIR))
