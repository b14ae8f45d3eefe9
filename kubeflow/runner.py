"""Compile the pipeline for Kubeflow Pipelines v2 (`.yaml`) or Vertex AI Pipelines (`.json`).

The same `create_pipeline` as the local runner, from the same config file plus a cluster profile
(configs/cluster/*.yaml). KubeflowV2DagRunner only compiles: every component becomes a container
step of `kubeflow.image` running TFX's entry point with the component's executor named by module
path, the pipeline's beam_pipeline_args appended. Nothing is written
under the pipeline root; the package is a local file.
"""
from __future__ import annotations

import dataclasses
import json
import os

import phone2dslr    # noqa: F401  (Keras/TF environment first)
import yaml

from phone2dslr.kubeflow import cluster
from phone2dslr import config as config_lib
from phone2dslr.config import ConfigError, PipelineConfig


@dataclasses.dataclass
class Compiled:
    """A written pipeline package and what a submitter needs to know about it."""

    package: str
    target: str  # kfp | vertex
    steps: list[str]  # task names in the compiled DAG
    pipeline_root: str


def load_config(config_path: str, profile_path: str | None = None,
                overrides: list[str] | None = None) -> PipelineConfig:
    """The local config with the cluster profile on top, then --set overrides; checked for a cluster."""
    extra = cluster.profile_overrides(profile_path) if profile_path else []
    config = config_lib.load(config_path, extra + list(overrides or []))
    cluster.check(config)
    return config


def default_package_path(config: PipelineConfig) -> str:
    return os.path.join("runs", "kubeflow", config.name + cluster.PACKAGE_SUFFIX[config.kubeflow.target])


def compile_pipeline(config: PipelineConfig, package_path: str | None = None,
                     until: str | None = None) -> Compiled:
    """Write the pipeline package for `config.kubeflow.target`; returns where and what."""
    from tfx import v1 as tfx
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

    from phone2dslr.pipeline.pipeline import create_pipeline

    cluster.check(config)
    target = config.kubeflow.target
    package_path = package_path or default_package_path(config)
    if not package_path.endswith(cluster.PACKAGE_SUFFIX[target]):
        raise ConfigError(f"target {target} writes a {cluster.PACKAGE_SUFFIX[target]} package, "
                          f"not {package_path}")
    tfx_pipeline = create_pipeline(config, None, until, **cluster.component_options(config))
    if any(c.exec_properties.get("module_file") for c in tfx_pipeline.components):
        raise ConfigError("a component uses module_file: compiling would write a wheel under the "
                          "pipeline root; name functions by module path instead")
    trainers = [c for c in tfx_pipeline.components if isinstance(c, tfx.components.Trainer)]
    resources = cluster.trainer_resources(config)
    for trainer in trainers if resources else []:
        trainer.with_platform_config(resources)
    # Schema 2.1 (typed parameterValues): the open-source KFP v2 backend validates parameters by
    # parameterType and fills only ExecutorInput.parameterValues; Vertex runs it as well.
    runner = v2.KubeflowV2DagRunner(v2.KubeflowV2DagRunnerConfig(
        display_name=config.name, default_image=config.kubeflow.image, use_pipeline_spec_2_1=True))
    job = runner.run(tfx_pipeline, write_out=False)  # a PipelineJob as a dict; we write it below

    os.makedirs(os.path.dirname(os.path.abspath(package_path)), exist_ok=True)
    with open(package_path, "w", encoding="utf-8") as f:
        if target == "vertex":
            json.dump(job, f, indent=1, sort_keys=True)
        else:  # KFP reads the pipeline spec, then an optional platform spec, as YAML documents
            platform = trainers and cluster.kubernetes_platform_spec(config, trainers[0].id)
            f.write(f"# PIPELINE DEFINITION\n# Name: {config.name}\n# Compiled by phone2dslr with "
                    f"{job['pipelineSpec'].get('sdkVersion', 'tfx')}; pipeline_root is given at submit time.\n")
            yaml.safe_dump_all([job["pipelineSpec"]] + ([platform] if platform else []), f, sort_keys=True)
    steps = list(job["pipelineSpec"]["root"]["dag"]["tasks"])
    return Compiled(package=package_path, target=target, steps=steps, pipeline_root=config.pipeline_root)
