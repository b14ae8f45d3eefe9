"""TFLiteExport: the trained generator as checked TFLite models for phones.

    TFLiteExport(model=trainer.outputs["model"],
                 model_blessing=evaluator.outputs["blessing"],   # optional
                 examples=example_gen.outputs["examples"],
                 variants=cfg.export.variants, min_parity_psnr=cfg.export.min_parity_psnr,
                 representative_samples=cfg.export.representative_samples)
      -> outputs["tflite_models"]: TFLiteModels

A class component (ComponentSpec + BaseExecutor) rather than the @component decorator: it needs an
optional input channel, a custom output artifact type with custom properties, and a default for
every parameter, and it keeps the executor importable by module path for every orchestrator.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from phone2dslr.components.tflite_export import executor


class TFLiteModels(artifact.Artifact):
    """TFLite variants of one model and the checks each passed or failed.

    * File structure:
        - `{uri}/<variant>.tflite`: every variant that passed (float32, float16, dynamic_int8, int8,
          fixed: float16 weights at a fixed [1, fixed_tile, fixed_tile, 3] input), each with TFLite
          model metadata (export/tflite_metadata.py: I/O description and tiling contract)
        - `{uri}/rejected/<variant>.tflite`: converted but failed a check (kept for debugging)
        - `{uri}/tflite_results.json`: per variant size_bytes, parity_max_abs, parity_psnr, psnr,
          psnr_pooled, ssim, ms_ssim, latency_ms, input_size, passed, reason, tiled_vs_whole_psnr,
          tiles_exactly, gpu_compatible, gpu_issues, metadata; plus the quality of the SavedModel
          and of the phone input on the same images
    * Custom properties: shipped_variants (comma-separated), num_shipped, model_blessed (when a
      blessing was given), psnr / psnr_pooled / ssim / ms_ssim / latency_ms of the float32 variant.

    The type name has a namespace: Kubeflow V2 accepts custom artifact types only as
    `<namespace>.<Name>` schema titles.
    """

    TYPE_NAME = "phone2dslr.TFLiteModels"


class TFLiteExportSpec(types.ComponentSpec):
    """Inputs, parameters and output of TFLiteExport (lists and dicts travel as JSON strings)."""

    PARAMETERS = {
        "variants": ExecutionParameter(type=str),  # JSON list, e.g. '["float32", "int8"]'
        "min_parity_psnr": ExecutionParameter(type=str),  # JSON object variant -> dB
        "representative_samples": ExecutionParameter(type=int),
        "eval_split": ExecutionParameter(type=str),
        "representative_split": ExecutionParameter(type=str),
        "max_eval_images": ExecutionParameter(type=int),
        "max_eval_side": ExecutionParameter(type=int),
        "latency_height": ExecutionParameter(type=int),
        "latency_width": ExecutionParameter(type=int),
        "latency_runs": ExecutionParameter(type=int),
        "threads": ExecutionParameter(type=int),
        "min_psnr_gain": ExecutionParameter(type=str, optional=True),  # "" or a float: quality gate
        "min_ssim_gain": ExecutionParameter(type=str, optional=True),
        "fixed_tile": ExecutionParameter(type=int, optional=True),
        "author": ExecutionParameter(type=str, optional=True),
        "license": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        executor.TFLITE_MODELS_KEY: ChannelParameter(type=TFLiteModels),
    }


class TFLiteExport(base_component.BaseComponent):
    """Converts the Model's `enhance_image` signature to TFLite variants and checks each one.

    A variant ships only if it accepts any input size and its output on held-out images stays
    within `min_parity_psnr[variant]` dB of the SavedModel's. With a blessing that says "not
    blessed" nothing is converted and the results file says so.
    """

    SPEC_CLASS = TFLiteExportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        examples: types.BaseChannel,
        model_blessing: types.BaseChannel | None = None,
        variants: Sequence[str] | str = tuple(executor.DEFAULTS["variants"]),
        min_parity_psnr: dict[str, float] | str | None = None,
        representative_samples: int = executor.DEFAULTS["representative_samples"],
        eval_split: str = executor.DEFAULTS["eval_split"],
        representative_split: str = executor.DEFAULTS["representative_split"],
        max_eval_images: int = executor.DEFAULTS["max_eval_images"],
        max_eval_side: int = executor.DEFAULTS["max_eval_side"],
        latency_size: tuple[int, int] = (executor.DEFAULTS["latency_height"], executor.DEFAULTS["latency_width"]),
        latency_runs: int = executor.DEFAULTS["latency_runs"],
        threads: int = executor.DEFAULTS["threads"],
        min_psnr_gain: float | None = None,
        min_ssim_gain: float | None = None,
        fixed_tile: int = executor.DEFAULTS["fixed_tile"],
        author: str = "",
        license: str = "",
    ) -> None:
        """Args mirror ExportConfig; `latency_size` is (height, width) of the latency input;
        min_*_gain: the Evaluator's absolute gate, applied to each variant's own outputs;
        fixed_tile: input side of the `fixed` variant; author / license: the metadata fields of
        every shipped file ("": tflite_checks.METADATA_DEFAULTS)."""
        params: dict[str, Any] = {
            "variants": variants if isinstance(variants, str) else json.dumps(list(variants)),
            "min_parity_psnr": (min_parity_psnr if isinstance(min_parity_psnr, str)
                                else json.dumps(min_parity_psnr or executor.DEFAULTS["min_parity_psnr"],
                                                sort_keys=True)),
            "representative_samples": int(representative_samples),
            "eval_split": eval_split,
            "representative_split": representative_split,
            "max_eval_images": int(max_eval_images),
            "max_eval_side": int(max_eval_side),
            "latency_height": int(latency_size[0]),
            "latency_width": int(latency_size[1]),
            "latency_runs": int(latency_runs),
            "threads": int(threads),
            "min_psnr_gain": "" if min_psnr_gain is None else str(float(min_psnr_gain)),
            "min_ssim_gain": "" if min_ssim_gain is None else str(float(min_ssim_gain)),
            "fixed_tile": int(fixed_tile),
            "author": author,
            "license": license,
        }
        executor.parse_parameters(params)  # fail at pipeline definition, not after training
        spec = TFLiteExportSpec(
            model=model, examples=examples, model_blessing=model_blessing,
            tflite_models=types.Channel(type=TFLiteModels), **params)
        super().__init__(spec=spec)
