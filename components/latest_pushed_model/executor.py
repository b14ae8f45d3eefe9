"""LatestPushedModel executor: copy the newest complete push into a Model artifact.

The project's ModelPusher writes `<serving_dir>/<version>/` with the version a unix timestamp (as
tfx/components/pusher/executor.py, Versioning.AUTO = UNIX_TIMESTAMP), puts `tflite/` and its push
record `push.json` there, and copies `saved_model.pb` last, so a version folder holding
`saved_model.pb` holds a complete push. Only the SavedModel is copied into the baseline.

When nothing has been pushed yet, the candidate model itself is copied as the baseline. A Kubeflow
step always hands its consumer one artifact, and the stock Evaluator treats any baseline artifact as
a baseline (`has_baseline = bool(input_dict.get('baseline_model'))`) and loads a SavedModel from it.
With the candidate as its own baseline every change is exactly 0, so "no worse than the baseline"
thresholds pass and the absolute thresholds decide: TFX's rubber stamp on a first run.
"""
from __future__ import annotations

import os
import re
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

SERVING_DIR_KEY = "serving_dir"
CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"

# Custom properties of the output: where the baseline came from.
SOURCE_PROPERTY = "baseline_source"  # "pushed" or "candidate" (nothing pushed yet)
VERSION_PROPERTY = "pushed_version"  # the version folder name, when pushed
PUSHED_PATH_PROPERTY = "pushed_path"  # the folder it was copied from, when pushed

# ModelPusher's record of a push in its version folder (the model's fingerprint, where it came from).
PUSH_RECORD = "push.json"
# What ModelPusher adds to a version folder beside the SavedModel; not part of the baseline model.
PUSHER_EXTRAS = ("tflite", PUSH_RECORD)


def latest_push(serving_dir: str) -> str | None:
    """Newest `<serving_dir>/<unix timestamp>/` holding saved_model.pb; None if there is none."""
    if not fileio.isdir(serving_dir):
        return None
    names = (name.rstrip("/") for name in fileio.listdir(serving_dir))
    for version in sorted((int(n) for n in names if n.isdigit()), reverse=True):
        folder = os.path.join(serving_dir, str(version))
        if fileio.exists(os.path.join(folder, "saved_model.pb")):
            return folder
    return None


class Executor(base_executor.BaseExecutor):
    """Writes `<model.uri>/Format-Serving/` (the Trainer's Model layout) from the latest push."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(output_dict[MODEL_KEY])
        destination = path_utils.serving_model_dir(model.uri)
        pushed = latest_push(exec_properties[SERVING_DIR_KEY])
        deny: list[str] = []
        if pushed:
            source = pushed
            deny = [f"^{re.escape(pushed.rstrip('/'))}/{re.escape(name)}(/|$)" for name in PUSHER_EXTRAS]
            model.set_string_custom_property(SOURCE_PROPERTY, "pushed")
            model.set_string_custom_property(VERSION_PROPERTY, os.path.basename(pushed))
            model.set_string_custom_property(PUSHED_PATH_PROPERTY, pushed)
        else:
            candidate = artifact_utils.get_single_instance(input_dict[CANDIDATE_KEY])
            source = path_utils.serving_model_path(candidate.uri, path_utils.is_old_model_artifact(candidate))
            model.set_string_custom_property(SOURCE_PROPERTY, "candidate")
        io_utils.copy_dir(source, destination, deny_regex_patterns=deny)  # replaces what a retry left
