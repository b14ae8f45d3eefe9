"""Submitting: a stand-in kfp.Client (no cluster exists here) and Vertex's real PipelineJob minus the API call."""
from __future__ import annotations

import functools

import kfp

from phone2dslr.kubeflow import runner, submit
from phone2dslr import cli
from tests.kubeflow.conftest import OVERRIDES, PROFILES, REMOTE, REPO

DEMO = str(REPO / "configs" / "demo.yaml")


class FakeKfpClient:
    """Records what kfp.Client would send to a Kubeflow Pipelines API server."""

    instances: list["FakeKfpClient"] = []

    def __init__(self, host=None, **kwargs):
        self.host, self.runs = host, []
        FakeKfpClient.instances.append(self)

    def create_run_from_pipeline_package(self, pipeline_file, arguments=None, **kwargs):
        self.runs.append({"pipeline_file": pipeline_file, "arguments": arguments, **kwargs})
        return type("Run", (), {"run_id": "run-123"})()


def test_cli_compiles_and_submits_to_the_endpoint(tmp_path, monkeypatch, capsys):
    FakeKfpClient.instances.clear()
    monkeypatch.setattr(kfp, "Client", FakeKfpClient)
    package = tmp_path / "p.yaml"
    argv = ["kubeflow", "--config", DEMO, "--profile", str(PROFILES["kfp"]), "--out", str(package),
            "--endpoint", "http://kfp.example:8080", "--run-name", "nightly", "--no-cache"]
    for item in OVERRIDES:
        argv += ["--set", item]
    assert cli.main(argv) == 0
    (client,) = FakeKfpClient.instances
    assert client.host == "http://kfp.example:8080"
    (run,) = client.runs
    assert run["pipeline_file"] == str(package) and package.exists()
    assert run["pipeline_root"] == REMOTE[0]
    assert run["run_name"] == "nightly" and run["arguments"] == {} and run["enable_caching"] is False
    assert "submitted run run-123" in capsys.readouterr().out


def test_cli_without_endpoint_only_writes_and_explains(tmp_path, monkeypatch, capsys):
    FakeKfpClient.instances.clear()
    monkeypatch.setattr(kfp, "Client", FakeKfpClient)
    package = tmp_path / "p.yaml"
    argv = ["kubeflow", "--config", DEMO, "--profile", str(PROFILES["kfp"]), "--out", str(package)]
    assert cli.main(argv + sum((["--set", o] for o in OVERRIDES), [])) == 0
    assert package.exists() and not FakeKfpClient.instances
    out = capsys.readouterr().out
    assert "create_run_from_pipeline_package" in out and REMOTE[0] in out


def test_cli_reports_config_errors_in_one_line(capsys):
    assert cli.main(["kubeflow", "--config", DEMO, "--profile", str(PROFILES["kfp"]),
                     "--set", "pipeline_root=runs/local"]) == 2
    assert capsys.readouterr().err.startswith("config error: pipeline_root")


def test_vertex_submit_builds_the_real_pipeline_job(tmp_path, monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    submitted = []
    monkeypatch.setattr(aiplatform.PipelineJob, "submit",
                        lambda self, **kwargs: submitted.append((self, kwargs)))
    config = runner.load_config(DEMO, str(PROFILES["vertex"]), OVERRIDES + ["kubeflow.service_account=sa@p.iam"])
    compiled = runner.compile_pipeline(config, str(tmp_path / "job.json"))
    job_cls = functools.partial(aiplatform.PipelineJob, credentials=AnonymousCredentials())
    job = submit.submit_vertex(compiled, config, job_cls=job_cls)
    assert submitted == [(job, {"service_account": "sa@p.iam"})]
    resource = job._gca_resource  # what submit() would send
    assert resource.runtime_config.gcs_output_directory == REMOTE[0]
    assert resource.pipeline_spec["pipelineInfo"]["name"] == config.name
    assert job.project == "my-project" and job.location == "us-central1"


def test_cli_unreachable_endpoint_is_one_line(tmp_path, monkeypatch, capsys):
    class Unreachable(FakeKfpClient):
        def create_run_from_pipeline_package(self, *args, **kwargs):
            raise ConnectionError("HTTPConnectionPool(host='kfp.example', port=8080): Max retries exceeded")

    monkeypatch.setattr(kfp, "Client", Unreachable)
    package = tmp_path / "p.yaml"
    argv = ["kubeflow", "--config", DEMO, "--profile", str(PROFILES["kfp"]), "--out", str(package),
            "--endpoint", "http://kfp.example:8080"] + sum((["--set", o] for o in OVERRIDES), [])
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("submit failed (the package is written): ") and err.count("\n") == 1
    assert package.exists()
