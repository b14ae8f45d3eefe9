"""`ModelPusher`: TFX's Pusher with one more (optional) input, the TFLite variants."""
from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from phone2dslr.components.model_pusher import executor
from phone2dslr.components.tflite_export.component import TFLiteModels


class ModelPusherSpec(standard_component_specs.PusherSpec):
    """PusherSpec plus `tflite_models`."""

    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        executor.TFLITE_MODELS_KEY: ChannelParameter(type=TFLiteModels, optional=True),
    }


class ModelPusher(base_component.BaseComponent):
    """Pushes a blessed model's SavedModel and its shipped TFLite files to a versioned folder."""

    SPEC_CLASS = ModelPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel, serving_dir: str,
                 tflite_models: types.BaseChannel | None = None) -> None:
        destination = pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir))
        spec = ModelPusherSpec(
            model=model, model_blessing=model_blessing, tflite_models=tflite_models,
            push_destination=destination, custom_config=json_utils.dumps(None),
            pushed_model=types.Channel(type=standard_artifacts.PushedModel))
        super().__init__(spec=spec)
