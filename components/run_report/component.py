"""RunReport: the run's outcome as one HTML page a person opens offline.

    RunReport(model=trainer.outputs["model"],
              evaluation=evaluator.outputs["evaluation"],
              blessing=evaluator.outputs["blessing"],
              examples=example_gen.outputs["examples"],
              tflite_models=tflite_export.outputs["tflite_models"],      # optional
              ingest_report=example_gen.outputs["ingest_report"],        # optional
              baseline_model=baseline.outputs["model"],                  # optional
              model_run=trainer.outputs["model_run"],                    # optional: history.json -> curves
              eval_split="test", num_crops=6,
              photos_dir="<root>/iphone/test_data/full_size_test_images", num_photos=3,
              run_info={"model": "dped", "content loss": "pixel (no pretrained VGG available)"})
      -> outputs["report"]: RunReportArtifact (type phone2dslr.RunReport), `<uri>/index.html`

A class component (ComponentSpec + BaseExecutor), like TFLiteExport: it needs optional input
channels, a custom output type with custom properties, and an executor importable by module path
for every orchestrator. run_info travels as a JSON string, which survives every orchestrator.
"""
from __future__ import annotations

import json
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from phone2dslr.components.image_example_gen.component import IngestReport
from phone2dslr.components.run_report import executor
from phone2dslr.components.tflite_export.component import TFLiteModels


class RunReportArtifact(artifact.Artifact):
    """A static, self-contained HTML report of one pipeline run (type name phone2dslr.RunReport).

    * File structure:
        - `{uri}/index.html`: the page; images are inlined (base64 PNG / JPEG / SVG), no external
          resources.
    * Custom properties: blessed (0/1); psnr, ssim, psnr_input, ssim_input, psnr_gain, ssim_gain,
      psnr_pooled(_input, _gain), ms_ssim(_input, _gain) of the overall slice (those the Evaluator
      recorded); index_html (the page's full path).

    Namespaced type name: Kubeflow V2 accepts custom types only as `<namespace>.<Name>`.
    """

    TYPE_NAME = "phone2dslr.RunReport"


class RunReportSpec(types.ComponentSpec):
    """Inputs (four optional), parameters and the report output."""

    PARAMETERS = {
        "eval_split": ExecutionParameter(type=str),
        "num_crops": ExecutionParameter(type=int),
        "crop_size": ExecutionParameter(type=int),
        "title": ExecutionParameter(type=str),
        "run_info": ExecutionParameter(type=str),  # JSON object
        "photos_dir": ExecutionParameter(type=str),
        "photos_dslr_dir": ExecutionParameter(type=str),
        "num_photos": ExecutionParameter(type=int),
        "gain_patches": ExecutionParameter(type=int),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        executor.BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.TFLITE_MODELS_KEY: ChannelParameter(type=TFLiteModels, optional=True),
        executor.INGEST_REPORT_KEY: ChannelParameter(type=IngestReport, optional=True),
        executor.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
        executor.MODEL_RUN_KEY: ChannelParameter(type=standard_artifacts.ModelRun, optional=True),
    }
    OUTPUTS = {executor.REPORT_KEY: ChannelParameter(type=RunReportArtifact)}


class RunReport(base_component.BaseComponent):
    """Renders the blessing decision and why, metrics per slice with thresholds, full-size photos
    through the shipped TFLite file, the per-patch PSNR gain histogram, training curves, the
    baseline comparison, TFLite variants, the ingest summary and before/after/DSLR samples into
    index.html.

    `baseline_model` is only read for where the baseline came from (LatestPushedModel marks a copy
    of the candidate, i.e. no real baseline yet); the comparison itself comes from the evaluation.
    """

    SPEC_CLASS = RunReportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        evaluation: types.BaseChannel,
        blessing: types.BaseChannel,
        examples: types.BaseChannel,
        tflite_models: types.BaseChannel | None = None,
        ingest_report: types.BaseChannel | None = None,
        baseline_model: types.BaseChannel | None = None,
        model_run: types.BaseChannel | None = None,
        eval_split: str = executor.DEFAULTS["eval_split"],
        num_crops: int = executor.DEFAULTS["num_crops"],
        crop_size: int = executor.DEFAULTS["crop_size"],
        title: str = executor.DEFAULTS["title"],
        run_info: dict[str, Any] | str | None = None,
        photos_dir: str = executor.DEFAULTS["photos_dir"],
        photos_dslr_dir: str = executor.DEFAULTS["photos_dslr_dir"],
        num_photos: int = executor.DEFAULTS["num_photos"],
        gain_patches: int = executor.DEFAULTS["gain_patches"],
    ) -> None:
        """run_info: free-form facts to show (model name, config summary, content-loss choice ...).

        photos_dir: full-size held-out phone photos, `num_photos` of them enhanced at full
        resolution (photos.full_size_dir gives DPED's folder); photos_dslr_dir: DSLR photos with
        the same file names, optional; gain_patches: how many test patches the gain histogram
        scores at most (all of the split up to that many; 0 turns it off).
        """
        params: dict[str, Any] = {
            "eval_split": eval_split,
            "num_crops": int(num_crops),
            "crop_size": int(crop_size),
            "title": title,
            "photos_dir": photos_dir,
            "photos_dslr_dir": photos_dslr_dir,
            "num_photos": int(num_photos),
            "gain_patches": int(gain_patches),
            "run_info": run_info if isinstance(run_info, str) else json.dumps(run_info or {}, sort_keys=False,
                                                                               default=str),
        }
        executor.parse_parameters(params)  # fail at pipeline definition, not after training
        spec = RunReportSpec(model=model, evaluation=evaluation, blessing=blessing, examples=examples,
                             tflite_models=tflite_models, ingest_report=ingest_report,
                             baseline_model=baseline_model, model_run=model_run,
                             report=types.Channel(type=RunReportArtifact), **params)
        super().__init__(spec=spec)
