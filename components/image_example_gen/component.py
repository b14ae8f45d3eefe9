"""The image ExampleGen component: photo folders in; Examples and an IngestReport out.

Declared with a BeamExecutorSpec so the pipeline's beam_pipeline_args (DirectRunner locally,
Dataflow / Flink / Spark elsewhere) reach it, and with TFX's FileBasedDriver so the input files
are fingerprinted: a cached run is reused only while the photos are unchanged.
"""
from __future__ import annotations

from tfx import types
from tfx.components.example_gen import driver
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from phone2dslr.components.image_example_gen import executor
from phone2dslr.components.image_example_gen.layout import IngestOptions, file_patterns
from phone2dslr.components.image_example_gen.splitting import manifests


class IngestReport(artifact.Artifact):
    """Folder with rejects.jsonl (one line per set-aside file), summary.json and summary.txt."""

    TYPE_NAME = "phone2dslr.IngestReport"  # "<namespace>.<Name>", as Kubeflow V2 requires of custom types


class ImageExampleGenSpec(types.ComponentSpec):
    """Parameters mirror DataConfig; input_config only tells the driver which files to fingerprint."""

    PARAMETERS = {
        standard_component_specs.INPUT_BASE_KEY: ExecutionParameter(type=str),
        standard_component_specs.INPUT_CONFIG_KEY: ExecutionParameter(type=example_gen_pb2.Input),
        "layout": ExecutionParameter(type=str),
        "phone": ExecutionParameter(type=str),
        "pairing": ExecutionParameter(type=str),
        "patch_size": ExecutionParameter(type=int),
        "patch_stride": ExecutionParameter(type=int),
        "patches_per_image": ExecutionParameter(type=int),
        "eval_percent": ExecutionParameter(type=int),
        "max_reject_fraction": ExecutionParameter(type=float),
        "seed": ExecutionParameter(type=int),
    }
    INPUTS = {}
    OUTPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.INGEST_REPORT_KEY: ChannelParameter(type=IngestReport),
    }


class ImageExampleGen(base_beam_component.BaseBeamComponent):
    """Reads DPED-layout or unpaired (trainA/trainB/testA/testB) photo folders into train/eval/test.

    Outputs: `examples` (Examples, splits train/eval/test, GZIP tf.Examples with the keys in
    features.py) and `ingest_report` (IngestReport). Bad files are normalised or set aside and
    listed; the run fails with IngestError only when too little is usable.
    """

    SPEC_CLASS = ImageExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(self, input_base: str, layout: str = "dped", phone: str = "iphone", pairing: str = "paired",
                 patch_size: int = 100, patch_stride: int = 0, patches_per_image: int = 0, eval_percent: int = 10,
                 max_reject_fraction: float = 0.5, seed: int = 0):
        options = IngestOptions(input_base=input_base, layout=layout, phone=phone, pairing=pairing,
                                patch_size=patch_size, patch_stride=patch_stride,
                                patches_per_image=patches_per_image, eval_percent=eval_percent,
                                max_reject_fraction=float(max_reject_fraction), seed=seed)  # checks values now
        patterns = {**file_patterns(options), **{f"{m.group}_manifest": m.path for m in manifests(options)}}
        input_config = example_gen_pb2.Input(splits=[  # the photo manifests too: editing one re-runs the split
            example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in patterns.items()])
        spec = ImageExampleGenSpec(
            input_base=input_base, input_config=input_config, layout=layout, phone=phone, pairing=pairing,
            patch_size=patch_size, patch_stride=patch_stride, patches_per_image=patches_per_image,
            eval_percent=eval_percent, max_reject_fraction=float(max_reject_fraction), seed=seed,
            examples=types.Channel(type=standard_artifacts.Examples),
            ingest_report=types.Channel(type=IngestReport))
        super().__init__(spec=spec)
