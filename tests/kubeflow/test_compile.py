"""The local pipeline compiled for Kubeflow Pipelines (kfp profile) and Vertex AI (vertex profile)."""
from __future__ import annotations

import json

from google.protobuf import json_format
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common import resolver
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner
from tfx.utils import name_utils

from phone2dslr.components.latest_pushed_model.component import LatestPushedModel
from tests.kubeflow.conftest import REMOTE, Build


def _tasks(build: Build) -> dict:
    return dict(build.spec.root.dag.tasks)


def _container(build: Build, task_name: str):
    label = build.spec.components[_tasks(build)[task_name].component_ref.name].executor_label
    return json_format.MessageToDict(build.spec.deployment_spec)["executors"][label]["container"]


def _local_index(build: Build) -> dict[str, int]:
    """Compiled task name -> position of the local component it stands for."""
    index = {}
    for i, component in enumerate(build.local_components):
        if isinstance(component, resolver.Resolver):
            for name in _tasks(build):  # Vertex splits the resolver in two; kfp replaces it
                if name.startswith(component.id) or name == "latest_pushed_model":
                    index[name] = i
        else:
            index[component.id] = i
    return index


def _task_for(build: Build, component) -> str:
    if isinstance(component, resolver.Resolver):
        names = [n for n, i in _local_index(build).items() if build.local_components[i] is component]
        return sorted(names)[-1]
    return component.id


def test_every_local_component_is_a_step(build: Build):
    index = _local_index(build)
    assert set(_tasks(build)) == set(index), "compiled steps differ from the local pipeline's components"
    assert set(index.values()) == set(range(len(build.local_components)))


def test_steps_keep_the_local_dependency_order(build: Build):
    index = _local_index(build)
    for name, task in _tasks(build).items():
        for upstream in task.dependent_tasks:
            assert index[upstream] <= index[name], f"{name} depends on later {upstream}"
    for component in build.local_components:
        task = _tasks(build)[_task_for(build, component)]
        wanted = {index[n] for n in task.dependent_tasks}
        for upstream in component.upstream_nodes:
            assert build.local_components.index(upstream) in wanted, (component.id, upstream.id)


def test_steps_run_the_project_image_with_tfx_entry_point(build: Build):
    for component in build.local_components:
        if isinstance(component, resolver.Resolver):
            continue
        container = _container(build, component.id)
        assert container["image"] == build.config.kubeflow.image
        assert container["command"] == list(kubeflow_v2_dag_runner.KUBEFLOW_TFX_CMD)
        args = container["args"]
        path = args[args.index("--executor_class_path") + 1]
        assert path == name_utils.get_full_name(component.executor_spec.executor_class)


def test_runtime_parameters_are_the_components_exec_properties(build: Build):
    for component in build.local_components:
        if isinstance(component, resolver.Resolver):
            continue
        params = _tasks(build)[component.id].inputs.parameters
        for key, value in component.exec_properties.items():
            if value is None:
                continue
            assert key in params, f"{component.id}.{key} missing"
            constant = json_format.MessageToDict(params[key].runtime_value.constant)
            if isinstance(value, (bool, int, float)):
                assert constant == value, (component.id, key)
            elif isinstance(value, str):
                assert constant == value or json.loads(constant) == json.loads(value), (component.id, key)
    example_gen = _tasks(build)["ImageExampleGen"].inputs.parameters
    assert example_gen["input_base"].runtime_value.constant.string_value == REMOTE[1]
    custom_config = _tasks(build)["Trainer"].inputs.parameters["custom_config"].runtime_value.constant
    trainer = json.loads(custom_config.string_value)
    assert trainer["train"]["backup_dir"].startswith(REMOTE[0])


def test_every_beam_step_gets_the_configured_beam_args(build: Build):
    beam_args = build.config.beam_pipeline_args
    beam_steps = [c for c in build.local_components
                  if isinstance(getattr(c, "executor_spec", None), executor_spec.BeamExecutorSpec)]
    assert {c.id for c in beam_steps} >= {"ImageExampleGen", "StatisticsGen", "Transform", "Evaluator"}
    for component in beam_steps:
        args = _container(build, component.id)["args"]
        assert args[-len(beam_args):] == beam_args, component.id


def test_trainer_step_requests_the_configured_gpus(build: Build):
    k = build.config.kubeflow
    resources = _container(build, "Trainer")["resources"]
    expected_type = k.gpu_resource if k.target == "kfp" else "NVIDIA_TESLA_T4"
    assert resources["accelerator"]["type"] == resources["accelerator"]["resourceType"] == expected_type
    assert int(resources["accelerator"]["count"]) == int(resources["accelerator"]["resourceCount"]) == k.gpu_count
    assert resources["cpuLimit"] == k.cpu_limit and resources["resourceMemoryLimit"] == f"{k.memory_limit_gb:g}G"
    for label, executor in json_format.MessageToDict(build.spec.deployment_spec)["executors"].items():
        if label != "Trainer_executor" and "container" in executor:
            assert "resources" not in executor["container"], f"{label} should get the cluster's default"


def test_compile_touches_nothing_remote(build: Build):
    assert build.remote_calls == []
    assert build.cwd_entries == ["out"], "the compile created something besides the package"


def test_kfp_spec_has_no_resolver_and_a_container_baseline(builds: dict[str, Build]):
    kfp = builds["kfp"]
    executors = json_format.MessageToDict(kfp.spec.deployment_spec)["executors"]
    assert not [label for label, e in executors.items() if "resolver" in e], "open-source KFP rejects resolvers"
    assert all("container" in e for e in executors.values())
    baseline = _container(kfp, "latest_pushed_model")
    assert baseline["args"][baseline["args"].index("--executor_class_path") + 1] == \
        name_utils.get_full_name(LatestPushedModel.EXECUTOR_SPEC.executor_class)
    task = _tasks(kfp)["latest_pushed_model"]
    assert task.inputs.parameters["serving_dir"].runtime_value.constant.string_value == REMOTE[2]
    assert task.inputs.artifacts["candidate"].task_output_artifact.producer_task == "Trainer"
    evaluator = _tasks(kfp)["Evaluator"].inputs.artifacts["baseline_model"].task_output_artifact
    assert (evaluator.producer_task, evaluator.output_artifact_key) == ("latest_pushed_model", "model")
    # The same pipeline for Vertex keeps TFX's resolver (Vertex runs it).
    vertex_executors = json_format.MessageToDict(builds["vertex"].spec.deployment_spec)["executors"]
    assert any("resolver" in e for e in vertex_executors.values())


def test_kfp_package_is_what_kfp_client_uploads(builds: dict[str, Build]):
    from kfp.client import client as kfp_client

    kfp = builds["kfp"]
    doc = kfp_client._extract_pipeline_yaml(kfp.compiled.package)  # what create_run_from_pipeline_package reads
    assert doc.pipeline_spec.pipeline_info.name == kfp.config.name
    assert doc.pipeline_spec.schema_version == "2.1.0"
    executor = json_format.MessageToDict(doc.platform_spec)["platforms"]["kubernetes"]["deploymentSpec"][
        "executors"]["Trainer_executor"]
    assert executor == {"nodeSelector": {"labels": kfp.config.kubeflow.node_selector}}


def test_vertex_package_is_a_pipeline_job_holding_the_root(builds: dict[str, Build]):
    vertex = builds["vertex"]
    assert vertex.job.runtime_config.gcs_output_directory == REMOTE[0]
    assert vertex.job.display_name == vertex.config.name


def test_remote_watch_sees_remote_access(monkeypatch):
    """The watcher behind test_compile_touches_nothing_remote does catch an access (stubbed, no network)."""
    import pytest
    from tfx.dsl.io import fileio

    from tests.kubeflow.conftest import _record_remote

    monkeypatch.setattr(fileio, "exists", lambda path: False)
    calls: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        _record_remote(mp, calls)
        fileio.exists(f"{REMOTE[0]}/anything")
    assert calls == [f"tfx.dsl.io.fileio.exists({REMOTE[0]}/anything)"]


def test_vertex_multi_worker_trains_as_a_vertex_job(tmp_path):
    from tfx.extensions.google_cloud_ai_platform import constants
    from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer

    from phone2dslr.kubeflow import runner
    from tests.kubeflow.conftest import OVERRIDES, PROFILES, REPO

    config = runner.load_config(str(REPO / "configs" / "demo.yaml"), str(PROFILES["vertex"]),
                                OVERRIDES + ["train.strategy=multi_worker", "kubeflow.workers=3"])
    compiled = runner.compile_pipeline(config, str(tmp_path / "job.json"))
    job = json.loads((tmp_path / "job.json").read_text())
    executor = job["pipelineSpec"]["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    assert executor["args"][executor["args"].index("--executor_class_path") + 1] == \
        name_utils.get_full_name(vertex_trainer.GenericExecutor)
    assert "resources" not in executor  # the replicas get the GPUs, the step only waits for the job
    params = job["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    custom = json.loads(params["custom_config"]["runtimeValue"]["constant"])
    assert custom["train"]["strategy"] == "multi_worker"
    assert custom[constants.ENABLE_VERTEX_KEY] and custom[constants.VERTEX_REGION_KEY] == "us-central1"
    training = custom[vertex_trainer.TRAINING_ARGS_KEY]
    assert training["project"] == "my-project"
    chief, workers = training["job_spec"]["worker_pool_specs"]
    assert (chief["replica_count"], workers["replica_count"]) == (1, 2)
    for pool in (chief, workers):
        assert pool["container_spec"]["image_uri"] == config.kubeflow.image
        assert pool["machine_spec"] == {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4",
                                        "accelerator_count": 1}
    assert "Trainer" in compiled.steps


def test_custom_artifact_types_resolve_from_their_kubeflow_title(build: Build):
    """The container entry point imports a custom type from its schema title, `<namespace>.<Name>`."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.utils import import_utils

    types = {channel.type for c in build.local_components for channel in [*c.inputs.values(), *c.outputs.values()]}
    custom = {t for t in types if f"tfx.{t.__name__}" not in compiler_utils.TITLE_TO_CLASS_PATH}
    assert custom, "the pipeline has custom artifact types (IngestReport, TFLiteModels)"
    for artifact_type in custom:
        assert import_utils.import_class_by_path(artifact_type.TYPE_NAME) is artifact_type
