"""Submitting: the real kfp.Client to a local stand-in of the KFP API, and Vertex's real PipelineJob minus the API call.

Multi-user submits (credentials, namespace, the one-line errors) are in test_multi_user_submit.py.
"""
from __future__ import annotations

import functools

import kfp

from phone2dslr.kubeflow import runner, submit
from phone2dslr import cli
from tests.kubeflow.conftest import OVERRIDES, PROFILES, REMOTE, REPO
from tests.kubeflow.kfp_server import FakeKfp

DEMO = str(REPO / "configs" / "demo.yaml")


class FakeKfpClient:
    """Records that kfp.Client was constructed (a compile alone must not)."""

    instances: list["FakeKfpClient"] = []

    def __init__(self, host=None, **kwargs):
        FakeKfpClient.instances.append(self)


def test_cli_compiles_and_submits_to_the_endpoint(tmp_path, no_cluster_around, capsys):
    """The compiled package, through the real kfp.Client, to a local stand-in of the KFP API."""
    package = tmp_path / "p.yaml"
    with FakeKfp() as server:
        argv = ["kubeflow", "--config", DEMO, "--profile", str(PROFILES["kfp"]), "--out", str(package),
                "--endpoint", server.url, "--run-name", "nightly", "--no-cache"]
        for item in OVERRIDES:
            argv += ["--set", item]
        assert cli.main(argv) == 0
    (run,) = server.requests_to("POST", "/runs")
    assert package.exists() and run.body["display_name"] == "nightly"
    assert run.body["runtime_config"]["pipeline_root"] == REMOTE[0]
    # With a platform spec (the Trainer's node selector) kfp sends both documents under pipeline_spec.
    spec, platform = run.body["pipeline_spec"]["pipeline_spec"], run.body["pipeline_spec"]["platform_spec"]
    assert spec["pipelineInfo"]["name"] == "phone2dslr-demo" and "kubernetes" in platform["platforms"]
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks and not any(t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())  # --no-cache
    out = capsys.readouterr().out
    assert f"submitted run run-1 to {server.url} (namespace -; no credential was sent" in out
    assert f"{server.url}/#/runs/details/run-1" in out


def test_cli_without_endpoint_only_writes_and_explains(tmp_path, monkeypatch, capsys):
    FakeKfpClient.instances.clear()
    monkeypatch.setattr(kfp, "Client", FakeKfpClient)
    package = tmp_path / "p.yaml"
    argv = ["kubeflow", "--config", DEMO, "--profile", str(PROFILES["kfp"]), "--out", str(package)]
    assert cli.main(argv + sum((["--set", o] for o in OVERRIDES), [])) == 0
    assert package.exists() and not FakeKfpClient.instances
    out = capsys.readouterr().out
    assert "create_run_from_pipeline_package" in out and REMOTE[0] in out and "--token-file" in out


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
