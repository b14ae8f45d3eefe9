"""RunReport executor: read the run's artifacts, render one self-contained index.html, set summary properties.

Only adapting happens here: results.py explains the Evaluator's decision, crops.py makes the
before/after samples, photos.py the full-size photos through the shipped TFLite file,
gain_histogram.py the per-patch PSNR gains, curves.py the training curves, render.py the page.
A report must not fail a run that already trained, evaluated and pushed, so an input it cannot
use (no `enhance_image` signature, a missing split, no history.json, no photo folder) becomes a
visible note on the page; a malformed parameter still fails, at once.
"""
from __future__ import annotations

import json
import os
from typing import Any

import phone2dslr    # noqa: F401  (Keras/TF environment first)
from absl import logging
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from phone2dslr.components.image_example_gen import report as ingest_report
from phone2dslr.components.latest_pushed_model import executor as latest_pushed
from phone2dslr.components.run_report import crops as crops_lib
from phone2dslr.components.run_report import curves, gain_histogram, photos, results
from phone2dslr.components.run_report.render import OVERALL, Gate, ReportData, render_page
from phone2dslr.components import split_images
from phone2dslr.export import tflite_checks

# Input / output keys and parameter names (component.py declares the same ones).
MODEL_KEY = "model"
EVALUATION_KEY = "evaluation"
BLESSING_KEY = "blessing"
EXAMPLES_KEY = "examples"
TFLITE_MODELS_KEY = "tflite_models"
INGEST_REPORT_KEY = "ingest_report"
BASELINE_MODEL_KEY = "baseline_model"
MODEL_RUN_KEY = "model_run"
REPORT_KEY = "report"

INDEX_FILE = "index.html"
DEFAULTS: dict[str, Any] = {
    "eval_split": "test",
    "num_crops": 6,
    "crop_size": 128,
    "title": "phone2dslr run report",
    "run_info": "{}",
    "photos_dir": "",  # full-size held-out phone photos (DPED: test_data/full_size_test_images)
    "photos_dslr_dir": "",  # optional: DSLR photos with the same file names
    "num_photos": 3,
    # test patches the gain histogram scores: all of the split up to this many, else a seeded sample
    # (DPED's generator at 100 px: about 25 ms a patch on 2 CPU cores, so under a minute)
    "gain_patches": 2000,
}
INT_PARAMETERS = ("num_crops", "crop_size", "num_photos", "gain_patches")
MAX_REJECTS_SHOWN = 20
# Overall-slice metrics put on the output artifact, so a runner prints them without opening files.
SUMMARY_METRICS = ("psnr", "ssim", "psnr_input", "ssim_input", "psnr_gain", "ssim_gain",
                   "psnr_pooled", "psnr_pooled_input", "psnr_pooled_gain", "ms_ssim", "ms_ssim_input", "ms_ssim_gain")


class Executor(base_executor.BaseExecutor):
    """Writes `<report.uri>/index.html` and the custom properties listed in component.RunReport."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        params = parse_parameters(exec_properties)
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        evaluation = artifact_utils.get_single_instance(input_dict[EVALUATION_KEY])
        blessing = artifact_utils.get_single_instance(input_dict[BLESSING_KEY])
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        report = artifact_utils.get_single_instance(output_dict[REPORT_KEY])

        gate = read_gate(evaluation.uri, blessing, _optional(input_dict, BASELINE_MODEL_KEY))
        saved_model = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        try:
            enhancer, enhancer_error = crops_lib.Enhancer(saved_model), ""
        except (ValueError, OSError) as e:
            enhancer, enhancer_error = None, str(e)
        split_dir = _split_dir(examples, params["eval_split"])
        crops, crops_note = _crops(enhancer, enhancer_error, examples, split_dir, params)
        data = ReportData(title=params["title"], gate=gate, run_info=params["run_info"],
                          crops=crops, crops_note=crops_note,
                          paths={"model": saved_model, "evaluation": evaluation.uri, "blessing": blessing.uri,
                                 "examples": examples.uri, "report": report.uri})
        data.gain, data.gain_note = gain_histogram.for_report(enhancer, split_dir, params["eval_split"],
                                                              params["gain_patches"])
        tflite_models = _optional(input_dict, TFLITE_MODELS_KEY)
        if tflite_models is not None:
            data.tflite = tflite_checks.read_results(tflite_models.uri)
            data.tflite_path = os.path.join(tflite_models.uri, tflite_checks.RESULTS_FILE)
            data.paths["tflite_models"] = tflite_models.uri
        shipped = photos.shipped_model(data.tflite, tflite_models.uri if tflite_models else None, saved_model)
        data.photos, data.photos_note = photos.for_report(shipped, params["photos_dir"], params["photos_dslr_dir"],
                                                          params["num_photos"])
        model_run = _optional(input_dict, MODEL_RUN_KEY)
        data.curves, data.curves_note = curves.for_report(model_run.uri if model_run is not None else None)
        if model_run is not None:
            data.paths["model_run"] = model_run.uri
        ingest = _optional(input_dict, INGEST_REPORT_KEY)
        if ingest is not None:
            data.ingest = ingest_report.read_summary(ingest.uri)
            data.rejects_preview, data.rejects_total = read_rejects(
                os.path.join(ingest.uri, ingest_report.REJECTS_FILE), MAX_REJECTS_SHOWN)
            data.paths["ingest_report"] = ingest.uri

        fileio.makedirs(report.uri)
        index = os.path.join(report.uri, INDEX_FILE)
        with fileio.open(index, "w") as f:
            f.write(render_page(data))
        set_output_properties(report, gate, index)
        logging.info("RunReport: %s (%s)", index, "blessed" if gate.blessed else "not blessed")


def parse_parameters(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """Exec properties -> typed values with defaults; run_info (a JSON object string) -> dict."""
    params = dict(DEFAULTS)
    params.update({k: v for k, v in exec_properties.items() if k in DEFAULTS and v is not None and v != ""})
    for name in INT_PARAMETERS:
        params[name] = int(params[name])
    if params["num_crops"] < 0 or params["crop_size"] < 1:
        raise ValueError(f"RunReport: num_crops must be >= 0 and crop_size >= 1, got {params['num_crops']} "
                         f"and {params['crop_size']}")
    if params["num_photos"] < 0 or params["gain_patches"] < 0:
        raise ValueError(f"RunReport: num_photos and gain_patches must be >= 0, got {params['num_photos']} "
                         f"and {params['gain_patches']}")
    params["photos_dir"], params["photos_dslr_dir"] = str(params["photos_dir"]), str(params["photos_dslr_dir"])
    info = params["run_info"]
    if isinstance(info, str):
        try:
            info = json.loads(info or "{}")
        except json.JSONDecodeError as e:
            raise ValueError(f"RunReport: run_info is not valid JSON ({e}): {info[:200]!r}") from None
    if not isinstance(info, dict):
        raise ValueError(f"RunReport: run_info must be a JSON object, got {type(info).__name__}")
    params["run_info"] = info
    params["title"] = str(params["title"])
    return params


def is_blessed(blessing: types.Artifact) -> bool:
    """The Evaluator's custom property, or its BLESSED marker file when the property is absent."""
    if blessing.has_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY):
        return blessing.get_int_custom_property(
            evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == evaluator_constants.BLESSED_VALUE
    return fileio.exists(os.path.join(blessing.uri, evaluator_constants.BLESSED_FILE_NAME))


def read_gate(evaluation_uri: str, blessing: types.Artifact, baseline: types.Artifact | None = None) -> Gate:
    """The Evaluator's decision with its reasons, and a sentence on where the baseline came from.

    LatestPushedModel (Kubeflow) hands over a copy of the candidate when nothing was pushed yet:
    every change is then exactly 0, so the page treats that run as having no baseline.
    """
    eval_config, metrics, validation = results.read_evaluation(evaluation_uri)
    note = ""
    copy_of_candidate = False
    if baseline is not None and baseline.has_custom_property(latest_pushed.SOURCE_PROPERTY):
        if baseline.get_string_custom_property(latest_pushed.SOURCE_PROPERTY) == "candidate":
            copy_of_candidate = True
            note = (results.NO_BASELINE.split(" (")[0] + " (nothing pushed yet: the candidate was compared with a "
                    "copy of itself, so the change-vs-baseline thresholds passed trivially)")
        else:
            note = ("baseline: pushed model version "
                    + baseline.get_string_custom_property(latest_pushed.VERSION_PROPERTY)
                    + " (" + baseline.get_string_custom_property(latest_pushed.PUSHED_PATH_PROPERTY) + ")")
    elif blessing.has_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY):
        note = "baseline: latest blessed model " + blessing.get_string_custom_property(
            evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY)
    gate = results.build_gate(eval_config, metrics, validation, is_blessed(blessing), note)
    if copy_of_candidate:
        gate.has_baseline = False
    return gate


def read_rejects(path: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The first `limit` lines of rejects.jsonl as dicts, and how many lines it has."""
    if not fileio.exists(path):
        return [], 0
    shown, total = [], 0
    with fileio.open(path, "r") as f:
        for line in f:
            if not line.strip():
                continue
            total += 1
            if len(shown) < limit:
                try:
                    shown.append(json.loads(line))
                except json.JSONDecodeError:
                    shown.append({"path": line.strip(), "reason": "unreadable line"})
    return shown, total


def set_output_properties(report: types.Artifact, gate: Gate, index: str) -> None:
    """blessed (0/1), the overall candidate metrics that were recorded, and the page's path."""
    report.set_int_custom_property("blessed", int(gate.blessed))
    report.set_string_custom_property("index_html", index)
    overall = next((s for s in gate.slices if s.name == OVERALL), None)
    for name in SUMMARY_METRICS:
        value = None if overall is None else overall.candidate.get(name)
        if value is not None:
            report.set_float_custom_property(name, float(value))


def _optional(input_dict: dict[str, list[types.Artifact]], key: str) -> types.Artifact | None:
    artifacts = input_dict.get(key) or []
    return artifact_utils.get_single_instance(artifacts) if artifacts else None


def _split_dir(examples: types.Artifact, split: str) -> str | None:
    """The folder of one split of the Examples, None when they have no such split."""
    if split not in artifact_utils.decode_split_names(examples.split_names):
        return None
    return artifact_utils.get_split_uri([examples], split)


def _crops(enhancer: crops_lib.Enhancer | None, enhancer_error: str, examples: types.Artifact,
           split_dir: str | None, params: dict[str, Any]) -> tuple[list, str]:
    """Samples for the page and a note saying where they came from (or why there are none)."""
    split, wanted = params["eval_split"], params["num_crops"]
    if wanted == 0:
        return [], "samples turned off (num_crops = 0)"
    if split_dir is None:
        names = artifact_utils.decode_split_names(examples.split_names)
        return [], f"no samples: Examples {examples.uri} have no split {split!r} (have: {', '.join(names)})"
    if enhancer is None:
        return [], f"no samples: {enhancer_error}"
    samples, skipped = split_images.read_samples(split_dir, wanted)
    if not samples:
        return [], f"no samples: split {split!r} has no example with a decodable phone image"
    crops = crops_lib.make_crops(enhancer, samples, params["crop_size"])
    note = (f"{len(crops)} example(s) from split {split!r}, centre-cropped to at most "
            f"{params['crop_size']} px, enhanced by the SavedModel's enhance_image signature")
    if skipped:
        note += "; skipped: " + ", ".join(f"{k} {v}" for k, v in skipped.items())
    return crops, note
