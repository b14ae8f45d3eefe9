"""TFX's Pusher, plus the TFLite files, and each model pushed once.

`<serving_dir>/<version>/` holds the SavedModel, `tflite/` with every variant that passed its
checks and `tflite_results.json`, and `push.json` (the push record), so TF Serving and the mobile
teams read one versioned folder.

Push once. A re-run whose Trainer and Evaluator come from the cache hands the Pusher the same
blessed model again, and TFX's Pusher copies it to a new version folder every time. Here a push is
recognised by its fingerprint: SHA-256 over the relative path and bytes of every file it ships
(the SavedModel's files and the shipped `.tflite` files; not `tflite_results.json`, whose latencies
change with every measurement). Same bytes, same fingerprint, wherever the pipeline root lies; a
changed set of TFLite variants is a new push. `push.json` records it (a version without one, pushed
before the record existed or interrupted before it, is fingerprinted from its files). When the
newest complete version has the candidate's fingerprint nothing is copied to serving_dir, and the
`pushed_model` artifact points at that version with `already_pushed` = 1. Only the newest version
counts: TF Serving serves the newest, so a model equal to an older version is pushed again and
becomes the served one.

Versions are unix timestamps, as TFX's (Versioning.AUTO), but always above every existing version:
TFX's Pusher silently skips a push whose second is already taken. `saved_model.pb` is copied last,
after `tflite/` and `push.json`, because TF Serving and LatestPushedModel take its presence to mean
the version is complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any

from absl import logging
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils, proto_utils

from phone2dslr.components.latest_pushed_model.executor import PUSH_RECORD, latest_push
from phone2dslr.export import tflite_checks

TFLITE_MODELS_KEY = "tflite_models"
PUSHED_MODEL_KEY = "pushed_model"
TFLITE_DIR = "tflite"
# Custom properties of the pushed_model artifact, beside TFX's pushed / pushed_destination /
# pushed_version (pushed = 1: the model is in serving_dir at pushed_destination).
ALREADY_PUSHED = "already_pushed"  # 1: it was there already and this execution copied nothing
FINGERPRINT = "push_fingerprint"
_CHUNK = 1 << 20


def _files(folder: str, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative path with '/': full path} of every file under `folder`, except those in `skip`."""
    root = folder.rstrip("/")
    found = {}
    for dir_name, _, leaf_files in fileio.walk(root):
        for leaf in leaf_files:
            path = os.path.join(dir_name, leaf)
            relative = path[len(root) + 1:].replace(os.sep, "/")
            if relative not in skip:
                found[relative] = path
    return found


def fingerprint(files: dict[str, str]) -> str:
    """"sha256:<hex>" over the sorted relative paths and bytes of `files` ({relative: path}).

    Paths are relative so that the same model copied elsewhere (a moved pipeline root) matches;
    each file is hashed on its own and listed as "<path> NUL <sha256>", so no two different file
    sets hash the same stream.
    """
    digest = hashlib.sha256()
    for relative in sorted(files):
        file_digest = hashlib.sha256()
        with fileio.open(files[relative], "rb") as f:
            while chunk := f.read(_CHUNK):
                file_digest.update(chunk)
        digest.update(f"{relative}\0{file_digest.hexdigest()}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def version_fingerprint(version_dir: str) -> str:
    """The fingerprint of a pushed version: from its push.json, else from its files."""
    record = os.path.join(version_dir, PUSH_RECORD)
    if fileio.exists(record):
        try:
            with fileio.open(record, "r") as f:
                return str(json.load(f)["fingerprint"])
        except (ValueError, KeyError, TypeError):  # a garbled record: the files still tell
            pass
    skip = (PUSH_RECORD, f"{TFLITE_DIR}/{tflite_checks.RESULTS_FILE}")
    return fingerprint(_files(version_dir, skip))


def _shipped(source_dir: str | None) -> list[str]:
    """The variants that passed their checks and whose .tflite file exists."""
    if not source_dir:
        return []
    results = tflite_checks.read_results(source_dir)
    return [v for v in results.get("shipped", []) if fileio.exists(os.path.join(source_dir, f"{v}.tflite"))]


def _copy_tflite(source_dir: str, shipped: list[str], dest_dir: str) -> None:
    """Copy the passed .tflite files and the results to `dest_dir`."""
    fileio.makedirs(dest_dir)
    for name in [f"{v}.tflite" for v in shipped] + [tflite_checks.RESULTS_FILE]:
        fileio.copy(os.path.join(source_dir, name), os.path.join(dest_dir, name), overwrite=True)


def _new_version(base_directory: str) -> str:
    """The unix time, or one more than the newest numeric version if that is not below it."""
    names = [n.rstrip("/") for n in fileio.listdir(base_directory)] if fileio.isdir(base_directory) else []
    version = max([int(time.time())] + [int(n) + 1 for n in names if n.isdigit()])
    while fileio.exists(os.path.join(base_directory, str(version))):  # another pusher's folder
        version += 1
    return str(version)


def _write_version(serving_path: str, model_path: str, tflite_dir: str | None, shipped: list[str],
                   record: dict[str, Any]) -> None:
    """Fill a new version folder: the SavedModel, tflite/, push.json, and saved_model.pb last."""
    top_level_pb = f"^{re.escape(model_path.rstrip('/'))}/saved_model\\.pb$"
    io_utils.copy_dir(model_path, serving_path, deny_regex_patterns=[top_level_pb])
    if tflite_dir:
        _copy_tflite(tflite_dir, shipped, os.path.join(serving_path, TFLITE_DIR))
    with fileio.open(os.path.join(serving_path, PUSH_RECORD), "w") as f:
        f.write(json.dumps(record, indent=1))
    if fileio.exists(os.path.join(model_path, "saved_model.pb")):  # last: "complete" to readers
        io_utils.copy_file(os.path.join(model_path, "saved_model.pb"),
                           os.path.join(serving_path, "saved_model.pb"))


class Executor(pusher_executor.Executor):
    """Push a blessed model like TFX's Pusher, with its shipped TFLite variants, unless the newest
    pushed version already holds the same bytes (module docstring)."""

    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]],
           exec_properties: dict[str, Any]) -> None:
        """Push, or point the pushed_model artifact at the version that already holds this model.

        Raises NotImplementedError for a push destination other than a filesystem folder (as
        TFX's Pusher), OSError when serving_dir cannot be written.
        """
        tflite_models = input_dict.pop(TFLITE_MODELS_KEY, [])
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties["push_destination"], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError(f"push destination {destination.WhichOneof('destination')}: "
                                      "ModelPusher writes to a filesystem folder only")
        base_directory = destination.filesystem.base_directory
        model_path = self.GetModelPath(input_dict)
        tflite_dir = artifact_utils.get_single_instance(tflite_models).uri if tflite_models else None
        shipped = _shipped(tflite_dir)
        files = _files(model_path)
        files.update({f"{TFLITE_DIR}/{v}.tflite": os.path.join(tflite_dir, f"{v}.tflite") for v in shipped})
        model_fingerprint = fingerprint(files)

        newest = latest_push(base_directory)
        already = newest is not None and version_fingerprint(newest) == model_fingerprint
        if already:
            serving_path = newest.rstrip("/")
            logging.info("Model already pushed: %s holds the same files (%s); nothing copied.",
                         serving_path, model_fingerprint)
        else:
            serving_path = os.path.join(base_directory, _new_version(base_directory))
            record = {"fingerprint": model_fingerprint, "model": model_path, "tflite_variants": shipped}
            _write_version(serving_path, model_path, tflite_dir, shipped, record)
            logging.info("Model written to serving path %s (%s).", serving_path, model_fingerprint)

        # The artifact's own archive copy, as TFX's Pusher keeps one, in both cases.
        io_utils.copy_dir(model_path, pushed.uri)
        if tflite_dir:
            _copy_tflite(tflite_dir, shipped, os.path.join(pushed.uri, TFLITE_DIR))
        self._MarkPushed(pushed, pushed_destination=serving_path,
                         pushed_version=os.path.basename(serving_path))
        pushed.set_int_custom_property(ALREADY_PUSHED, int(already))
        pushed.set_string_custom_property(FINGERPRINT, model_fingerprint)
        if tflite_models:
            pushed.set_string_custom_property("tflite_variants", ",".join(shipped))
            pushed.set_string_custom_property("tflite_dir", os.path.join(serving_path, TFLITE_DIR))
