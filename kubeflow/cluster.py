"""What a cluster run needs beyond the local pipeline: profile merge, path checks, Trainer resources.

Everything here is plain data or KFP protos built from `PipelineConfig`; nothing touches a file or
the network, so compiling a pipeline for a gs:// root writes nothing there.
"""
from __future__ import annotations

import json
import re
from typing import Any

import yaml

from phone2dslr.config import ConfigError, PipelineConfig

# Pipeline roots each target can run with: KFP's launcher maps gs:// and s3:// (and minio://, which
# TensorFlow cannot open) to local mounts; Vertex AI Pipelines needs Cloud Storage.
ROOT_SCHEMES = {"kfp": ("gs://", "s3://"), "vertex": ("gs://",)}
PACKAGE_SUFFIX = {"kfp": ".yaml", "vertex": ".json"}  # bare pipeline spec | Vertex PipelineJob
NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS-1123 label, as Kubernetes checks


def profile_overrides(profile_path: str) -> list[str]:
    """A cluster profile as `key=value` overrides, so `config.load` merges and checks it like --set.

    Section keys (`kubeflow:`, `train:` ...) are merged key by key; anything else replaces the base
    value whole (a profile's beam_pipeline_args replace the local ones).
    """
    try:
        with open(profile_path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"cluster profile not found: {profile_path}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"cluster profile {profile_path}: expected a mapping")
    sections = {"data", "train", "eval", "export", "kubeflow"}
    items = [(f"{k}.{k2}", v2) for k, v in raw.items() if k in sections and isinstance(v, dict)
             for k2, v2 in v.items()]
    items += [(k, v) for k, v in raw.items() if not (k in sections and isinstance(v, dict))]
    return [f"{key}={json.dumps(value)}" for key, value in items]  # JSON is YAML: values round-trip


def check(config: PipelineConfig) -> None:
    """Fail at compile time, in one line, on settings a cluster run cannot use."""
    k, target = config.kubeflow, config.kubeflow.target
    if not config.pipeline_root.startswith(ROOT_SCHEMES[target]):
        raise ConfigError(f"pipeline_root {config.pipeline_root!r}: target {target} needs one of "
                          f"{', '.join(ROOT_SCHEMES[target])} (every step reads and writes it)")
    paths = {"data.root": config.data.root, "serving_dir": config.serving_dir,
             "train.backup_dir": config.train.backup_dir, "train.vgg_weights": config.train.vgg_weights}
    for name, path in paths.items():
        if path and "://" not in path and not path.startswith("/"):
            raise ConfigError(f"{name} {path!r} is relative: on a cluster use a URI (gs://...) or an "
                              "absolute path every pod sees")
    if config.data.demo_dir:
        raise ConfigError("data.demo_dir: the demo data is generated locally; set it to '' and point "
                          "data.root at uploaded photos")
    if k.gpu_count < 0 or k.cpu_limit < 0 or k.memory_limit_gb < 0:
        raise ConfigError("kubeflow.gpu_count, cpu_limit and memory_limit_gb must be >= 0")
    strategy = config.train.strategy
    if strategy == "default" and k.gpu_count > 1:
        raise ConfigError(f"kubeflow.gpu_count {k.gpu_count} with train.strategy default trains on "
                          "one GPU; set train.strategy: mirrored")
    if strategy == "multi_worker" and target == "kfp":
        raise ConfigError("train.strategy multi_worker needs TF_CONFIG from several workers, and a "
                          "Kubeflow Pipelines step is one pod: use mirrored with kubeflow.gpu_count > 1, "
                          "or target vertex (the Trainer then runs as a Vertex AI training job)")
    if k.namespace and not NAMESPACE.fullmatch(k.namespace):
        raise ConfigError(f"kubeflow.namespace {k.namespace!r}: a Kubernetes namespace is lower-case "
                          "letters, digits and '-', at most 63 characters (your Kubeflow profile's name)")
    if target == "vertex" and not k.project:
        raise ConfigError("kubeflow.project: target vertex needs the GCP project")
    if strategy == "multi_worker" and k.workers < 2:
        raise ConfigError(f"kubeflow.workers {k.workers}: multi_worker needs at least 2")


def vertex_accelerator(gpu_type: str) -> str:
    """Vertex accelerator names are enum-style: nvidia-tesla-t4 -> NVIDIA_TESLA_T4."""
    return gpu_type.strip().upper().replace("-", "_")


def trainer_resources(config: PipelineConfig) -> Any:
    """The Trainer step's ResourceSpec (TFX `with_platform_config`), or None to leave it default.

    Both the newer string fields and the older numeric ones are set, as the KFP SDK does, so older
    and newer KFP backends (and Vertex) read the same request.
    """
    from kfp.pipeline_spec import pipeline_spec_pb2

    k = config.kubeflow
    if config.train.strategy == "multi_worker":  # the replicas get the GPUs; the step only waits
        return None
    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if k.cpu_limit:
        spec.cpu_limit = k.cpu_limit
        spec.resource_cpu_limit = f"{k.cpu_limit:g}"
    if k.memory_limit_gb:
        spec.memory_limit = k.memory_limit_gb
        spec.resource_memory_limit = f"{k.memory_limit_gb:g}G"
    if k.gpu_count:
        kind = k.gpu_resource if k.target == "kfp" else vertex_accelerator(k.gpu_type)
        spec.accelerator.type = spec.accelerator.resource_type = kind
        spec.accelerator.count = k.gpu_count
        spec.accelerator.resource_count = str(k.gpu_count)
    return spec if spec.ByteSize() else None


def kubernetes_platform_spec(config: PipelineConfig, trainer_id: str) -> dict[str, Any] | None:
    """KFP's second YAML document: Kubernetes settings per executor (the Trainer's node selector)."""
    if config.kubeflow.target != "kfp" or not config.kubeflow.node_selector:
        return None
    executor = {"nodeSelector": {"labels": dict(config.kubeflow.node_selector)}}
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {f"{trainer_id}_executor": executor}}}}}


def vertex_training_config(config: PipelineConfig) -> dict[str, Any]:
    """Trainer custom_config keys that make TFX's Vertex extension run training as a CustomJob.

    Replica 0 (workerpool0) is the chief, the other `workers - 1` form workerpool1; Vertex sets
    TF_CONFIG on each, which MultiWorkerMirroredStrategy reads.
    """
    from tfx.extensions.google_cloud_ai_platform import constants
    from tfx.extensions.google_cloud_ai_platform.trainer import executor

    k = config.kubeflow
    machine: dict[str, Any] = {"machine_type": k.machine_type}
    if k.gpu_count:
        machine.update(accelerator_type=vertex_accelerator(k.gpu_type), accelerator_count=k.gpu_count)
    pool = {"machine_spec": machine, "container_spec": {"image_uri": k.image}}
    job_spec: dict[str, Any] = {"worker_pool_specs": [{**pool, "replica_count": 1},
                                                      {**pool, "replica_count": k.workers - 1}]}
    if k.service_account:
        job_spec["service_account"] = k.service_account
    return {constants.ENABLE_VERTEX_KEY: True, constants.VERTEX_REGION_KEY: k.region,
            executor.TRAINING_ARGS_KEY: {"project": k.project, "job_spec": job_spec}}


def component_options(config: PipelineConfig) -> dict[str, Any]:
    """Keyword arguments for `create_pipeline` that a cluster target needs (the pipeline.py hook)."""
    options: dict[str, Any] = {}
    if config.kubeflow.target == "kfp":
        options["baseline"] = "pushed"  # open-source KFP cannot run Resolver nodes
    if config.train.strategy == "multi_worker":  # vertex (check() refuses it on kfp)
        from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer as VertexTrainer

        options["trainer_class"] = VertexTrainer  # same inputs; its executor starts a Vertex CustomJob
        options["trainer_config"] = vertex_training_config(config)
    return options
