"""Submit a compiled package: open-source KFP through `kfp.Client`, Vertex through `PipelineJob`.

The client classes are parameters so tests can stand in for a cluster; by default the real ones
are imported.
"""
from __future__ import annotations

from typing import Any

from phone2dslr.kubeflow.runner import Compiled
from phone2dslr.config import PipelineConfig


def submit_kfp(compiled: Compiled, config: PipelineConfig, endpoint: str | None, run_name: str | None = None,
               experiment: str | None = None, enable_caching: bool | None = None, client_cls: Any = None) -> Any:
    """Start a run on a Kubeflow Pipelines host (None: the in-cluster default); returns the run.

    enable_caching None keeps the compiled setting (cached steps are reused); False reruns every step.
    """
    if client_cls is None:
        import kfp

        client_cls = kfp.Client
    client = client_cls(host=endpoint)
    return client.create_run_from_pipeline_package(
        compiled.package, arguments={}, run_name=run_name, experiment_name=experiment,
        pipeline_root=compiled.pipeline_root, enable_caching=enable_caching,
        service_account=config.kubeflow.service_account or None)


def submit_vertex(compiled: Compiled, config: PipelineConfig, run_name: str | None = None,
                  enable_caching: bool | None = None, job_cls: Any = None) -> Any:
    """Submit a PipelineJob to Vertex AI Pipelines in kubeflow.project / kubeflow.region."""
    if job_cls is None:
        from google.cloud import aiplatform

        job_cls = aiplatform.PipelineJob
    k = config.kubeflow
    job = job_cls(display_name=run_name or config.name, template_path=compiled.package,
                  pipeline_root=compiled.pipeline_root, project=k.project, location=k.region,
                  enable_caching=enable_caching)
    job.submit(service_account=k.service_account or None)
    return job


def how_to_submit(compiled: Compiled, config: PipelineConfig) -> str:
    """Instructions printed when only the package was written."""
    if compiled.target == "vertex":
        k = config.kubeflow
        return ("submit with: phone2dslr kubeflow ... --submit   (Vertex AI, project "
                f"{k.project}, region {k.region})\n  or: aiplatform.PipelineJob(display_name={config.name!r}, "
                f"template_path={compiled.package!r}, pipeline_root={compiled.pipeline_root!r}, "
                f"project={k.project!r}, location={k.region!r}).submit()")
    return ("submit with: phone2dslr kubeflow ... --endpoint http://<KFP host>   (--no-cache to rerun every step)"
            "\n  or: kfp.Client(host=...)"
            f".create_run_from_pipeline_package({compiled.package!r}, arguments={{}}, "
            f"pipeline_root={compiled.pipeline_root!r})\n  or upload it in the KFP UI and set the "
            f"pipeline root to {compiled.pipeline_root}")
