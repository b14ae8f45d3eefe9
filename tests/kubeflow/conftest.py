"""Compile the pipeline once per target, watching for any access to the remote pipeline root."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUCKET = "gs://phone2dslr-test-bucket"
PROFILES = {"kfp": REPO / "configs" / "cluster" / "kubeflow.yaml",
            "vertex": REPO / "configs" / "cluster" / "vertex.yaml"}
# Every remote location the compile knows about; none may be touched.
REMOTE = [f"{BUCKET}/root", f"{BUCKET}/dped", f"{BUCKET}/serving"]
OVERRIDES = [f"pipeline_root={REMOTE[0]}", f"data.root={REMOTE[1]}", f"serving_dir={REMOTE[2]}"]


@dataclasses.dataclass
class Build:
    """One compiled package, parsed, and what the compile touched."""

    config: Any
    compiled: Any
    spec: Any  # pipeline_spec_pb2.PipelineSpec
    job: Any  # pipeline_spec_pb2.PipelineJob (vertex) or None
    platform: dict  # KFP platform spec document ({} when absent)
    local_components: list  # create_components(config) with the local runner's defaults
    remote_calls: list[str]
    cwd_entries: list[str]


def _record_remote(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    """Wrap TFX fileio and tf.io.gfile: any path argument under the bucket is recorded."""
    import tensorflow as tf
    from tfx.dsl.io import fileio

    def wrap(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def recorder(*args: Any, **kwargs: Any) -> Any:
            for value in list(args) + list(kwargs.values()):
                if isinstance(value, (str, os.PathLike)) and str(value).startswith(("gs:", "gs/")):
                    calls.append(f"{owner.__name__}.{name}({value})")
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, recorder)

    for name in ("open", "copy", "exists", "glob", "isdir", "listdir", "makedirs", "mkdir", "remove",
                 "rename", "rmtree", "stat", "walk"):
        wrap(fileio, name)
    for name in ("GFile", "copy", "exists", "glob", "isdir", "listdir", "makedirs", "mkdir", "remove",
                 "rename", "rmtree", "stat", "walk"):
        wrap(tf.io.gfile, name)
    try:
        from google.cloud import storage

        def no_client(*args: Any, **kwargs: Any) -> None:
            calls.append("google.cloud.storage.Client()")
            raise RuntimeError("compile must not open a Cloud Storage client")

        monkeypatch.setattr(storage.Client, "__init__", no_client)
    except ImportError:  # pragma: no cover
        pass


def _compile(target: str, workdir: Path) -> Build:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    from phone2dslr.kubeflow import runner
    from phone2dslr.pipeline.pipeline import create_components

    config = runner.load_config(str(REPO / "configs" / "demo.yaml"), str(PROFILES[target]), OVERRIDES)
    calls: list[str] = []
    old = os.getcwd()
    os.chdir(workdir)  # a relative gs: folder created by mistake would appear here
    try:
        with pytest.MonkeyPatch.context() as mp:
            _record_remote(mp, calls)
            package = workdir / "out" / ("package.json" if target == "vertex" else "package.yaml")
            compiled = runner.compile_pipeline(config, str(package))
    finally:
        os.chdir(old)
    text = Path(compiled.package).read_text()
    job = None
    platform: dict = {}
    if target == "vertex":
        job = json_format.ParseDict(json.loads(text), pipeline_spec_pb2.PipelineJob())
        spec = json_format.ParseDict(json_format.MessageToDict(job.pipeline_spec),
                                     pipeline_spec_pb2.PipelineSpec())
    else:
        docs = list(yaml.safe_load_all(text))
        spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
        platform = docs[1] if len(docs) > 1 else {}
    return Build(config=config, compiled=compiled, spec=spec, job=job, platform=platform,
                 local_components=create_components(config),
                 remote_calls=calls, cwd_entries=sorted(os.listdir(workdir)))


class _Builds(dict):
    """Compiles a target the first time a test asks for it."""

    def __init__(self, factory: pytest.TempPathFactory):
        super().__init__()
        self.factory = factory

    def __missing__(self, target: str) -> Build:
        self[target] = _compile(target, self.factory.mktemp(f"compile_{target}"))
        return self[target]


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Build]:
    return _Builds(tmp_path_factory)


@pytest.fixture(params=sorted(PROFILES))
def build(request: pytest.FixtureRequest, builds: dict[str, Build]) -> Build:
    return builds[request.param]


# What kfp.Client and kubeflow/credentials.py read from the machine besides their arguments.
KFP_ENV = ("KF_PIPELINES_SA_TOKEN_PATH", "KFP_BEARER_TOKEN", "KFP_SESSION_COOKIE", "KF_PIPELINES_ENDPOINT",
           "KF_PIPELINES_UI_ENDPOINT", "KUBERNETES_SERVICE_HOST", "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME",
           "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME")


@pytest.fixture
def no_cluster_around(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from this machine leaks into a submit: kfp's context file, pod files, credential variables."""
    from kfp.client import client as kfp_client

    from phone2dslr.kubeflow import credentials

    for name in KFP_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(kfp_client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.setattr(kfp_client.Client, "_NAMESPACE_PATH", str(tmp_path / "no-pod-namespace"))
    monkeypatch.setattr(credentials, "SA_TOKEN_DEFAULT", str(tmp_path / "no-sa-token"))
    monkeypatch.setattr(credentials, "POD_NAMESPACE_FILE", str(tmp_path / "no-pod-namespace"))
