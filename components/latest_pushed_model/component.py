"""LatestPushedModel: the baseline model for the Evaluator, read from the Pusher's serving_dir.

    baseline = LatestPushedModel(serving_dir=cfg.serving_dir, candidate=trainer.outputs["model"])
    Evaluator(..., baseline_model=baseline.outputs["model"])

Stands in for `Resolver(LatestBlessedModelStrategy)` where Resolver nodes cannot run: open-source
Kubeflow Pipelines rejects the resolver executor they compile to. ModelPusher (TFX's Pusher) pushes
only blessed models, so the newest push is the latest blessed model that shipped. A class component
(ComponentSpec + BaseExecutor), so it compiles to an ordinary container step of the project image.
"""
from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from phone2dslr.components.latest_pushed_model import executor


class LatestPushedModelSpec(types.ComponentSpec):
    """serving_dir: where the Pusher writes; candidate: the fallback when nothing was pushed yet."""

    PARAMETERS = {executor.SERVING_DIR_KEY: ExecutionParameter(type=str)}
    INPUTS = {executor.CANDIDATE_KEY: ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}


class LatestPushedModel(base_component.BaseComponent):
    """Outputs `model` (Model): a copy of the newest complete `<serving_dir>/<version>/` push.

    With nothing pushed yet the copy is of `candidate`, so the Evaluator's change thresholds pass
    trivially and its absolute thresholds decide. Custom properties on the output say which:
    `baseline_source` ("pushed" or "candidate"), and `pushed_version` / `pushed_path` when pushed.
    """

    SPEC_CLASS = LatestPushedModelSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, serving_dir: str, candidate: types.BaseChannel) -> None:
        spec = LatestPushedModelSpec(
            serving_dir=serving_dir, candidate=candidate,
            model=types.Channel(type=standard_artifacts.Model))
        super().__init__(spec=spec)
