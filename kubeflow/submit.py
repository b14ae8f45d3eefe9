"""Submit a compiled package: open-source KFP through `kfp.Client`, Vertex through `PipelineJob`.

On KFP the host, the profile namespace and the credential (kubeflow/credentials.py) are resolved
first, then the server's health endpoint is asked once: it tells an unreachable host, a refused
credential, a gateway's login page and a multi-user server without namespace apart in one line
each, before kfp.Client (whose own health check retries for 25 s and logs each failure) starts.
Every failure becomes one `SubmitError` line with the fix, masked of the credential.

The client classes are parameters so tests can stand in for a cluster; by default the real ones
are imported.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import warnings
from typing import Any, Mapping

from phone2dslr.config import PipelineConfig
from phone2dslr.errors import one_line
from phone2dslr.kubeflow import credentials
from phone2dslr.kubeflow.credentials import Credential
from phone2dslr.kubeflow.runner import Compiled

# kfp.Client's in-cluster default (its _IN_CLUSTER_DNS_NAME for the `kubeflow` namespace).
IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
HEALTHZ = "/apis/v2beta1/healthz"
PORT_FORWARD = "kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80"
GATEWAY_FORWARD = "kubectl port-forward -n istio-system svc/istio-ingressgateway 8080:80"
CHECK_TIMEOUT_S = 10.0


class SubmitError(ValueError):
    """A submit the user can fix: one line, the credential masked, saying what to change."""


class SubmitFailed(RuntimeError):
    """Any other failure of a submit, as one masked line."""


@dataclasses.dataclass
class Submitted:
    """A run the server accepted, and what the user needs to find it (no secret in it)."""

    run_id: str
    url: str
    host: str
    namespace: str
    credential: str  # Credential.describe()


def resolve_host(endpoint: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """--endpoint, else $KF_PIPELINES_ENDPOINT, else (in a pod) KFP's in-cluster service.

    None outside a pod without either: kfp.Client then goes through the kube config's API proxy.
    Raises SubmitError for a host without http:// or https:// (kfp would guess https).
    """
    env = os.environ if environ is None else environ
    in_pod = bool(env.get("KUBERNETES_SERVICE_HOST"))  # Kubernetes sets it in every container
    host = endpoint or env.get("KF_PIPELINES_ENDPOINT") or (IN_CLUSTER_HOST if in_pod else None)
    if host and not host.startswith(("http://", "https://")):
        raise SubmitError(f"endpoint {host} (--endpoint or $KF_PIPELINES_ENDPOINT): give the scheme, e.g. "
                          f"http://{host} (a port-forward) or https://{host} (a gateway)")
    return host.rstrip("/") if host else None


def run_url(host: str | None, run_id: str, environ: Mapping[str, str] | None = None) -> str:
    """The run's page in the KFP UI, as kfp prints it: `<UI host>/#/runs/details/<id>`."""
    env = os.environ if environ is None else environ
    ui = env.get("KF_PIPELINES_UI_ENDPOINT") or host
    if not ui or ui == IN_CLUSTER_HOST:  # the API service has no UI: the dashboard's path
        return f"/pipeline/#/runs/details/{run_id} (on the Kubeflow dashboard)"
    return f"{ui.rstrip('/')}/#/runs/details/{run_id}"


def _server_message(status: int, body: Any, reason: str = "") -> str:
    """The server's own words: grpc-gateway's JSON `message`/`error`, else the body's first line."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or "")
    try:
        data = json.loads(text)
        text = str(data.get("message") or data.get("error") or text) if isinstance(data, dict) else text
    except ValueError:
        pass
    text = " ".join(text.split()) or reason or f"HTTP {status}"
    return text[:240]


def _tried(credential: Credential) -> str:
    """'the token from <source> was refused', or that none was sent; never the value."""
    return credential.describe() + ("" if credential.kind == "none" else " was refused")


def _no_credential_fix() -> str:
    return (f"give one: --token-file PATH, --cookie-file PATH, ${credentials.TOKEN_ENV} or "
            f"${credentials.COOKIE_ENV} (README: Kubeflow, multi-user)")


def _http_error(status: int, message: str, where: str, namespace: str, credential: Credential,
                package: str, reason: str = "") -> SubmitError:
    """One line with the fix for an HTTP error status from the KFP API or its gateway."""
    tried = _tried(credential)
    if status == 401:
        fix = {"none": _no_credential_fix(),
               "cookie": "log in again and copy a fresh session cookie"}.get(
            credential.kind, "it is expired or not for this server: create a fresh one "
                             "(kubectl -n <profile> create token default-editor)")
        return SubmitError(f"401 Unauthorized from {where} ({message}): {tried}; {fix}")
    if status == 403:
        fix = (_no_credential_fix() if credential.kind == "none" else
               f"its account may not use namespace {namespace or '(none set)'}: set kubeflow.namespace to your "
               "profile, or have the profile's owner add the account as a contributor")
        return SubmitError(f"403 Forbidden from {where} ({message}): {tried}; {fix}")
    if "namespace" in message.lower():
        if not namespace:
            return SubmitError(f"{where} needs a profile namespace ({message}): set kubeflow.namespace "
                               "(or --namespace) to your Kubeflow profile")
        return SubmitError(f"{where} refused namespace {namespace} ({message}): set kubeflow.namespace "
                           "(or --namespace) to a profile you belong to")
    if status == 404:
        return SubmitError(f"{where} has no Kubeflow Pipelines v2 API (404 {message}): check --endpoint "
                           f"(http://localhost:8080 with `{PORT_FORWARD}`, or https://<gateway>/pipeline)")
    if 400 <= status < 500:
        return SubmitError(f"{where} rejected the run ({status}: {message}); the package stays at {package}: "
                           "fix what the server names, or upload it in the KFP UI to see the whole answer")
    return SubmitError(f"{status} {reason} from {where} ({message}): the server failed; its log says why "
                       "(kubectl -n kubeflow logs deploy/ml-pipeline), then submit again")


def _unreachable(where: str, error: BaseException) -> SubmitError:
    text = str(error).lower()
    why = ("connection refused" if "refused" in text else "host name not found"
           if "name or service" in text or "nodename" in text or "getaddrinfo" in text or "resolve" in text
           else "timed out" if "timed out" in text or "timeout" in text
           else "TLS failed" if "ssl" in text or "certificate" in text else type(error).__name__)
    return SubmitError(f"cannot reach {where} ({why}): check --endpoint and that the port-forward "
                       f"(`{PORT_FORWARD}`; multi-user Kubeflow: `{GATEWAY_FORWARD}`, endpoint "
                       "http://localhost:8080/pipeline) or the gateway is up")


def check_server(host: str, credential: Credential, namespace: str, package: str,
                 timeout: float = CHECK_TIMEOUT_S) -> dict[str, Any]:
    """GET the health endpoint once with the credential; returns its JSON (`multi_user`, ...).

    Raises SubmitError (unmasked: the caller masks) for an unreachable host, 401/403, a redirect to a
    login page, or an answer that is not the KFP API.
    """
    import certifi
    import urllib3  # kfp_server_api's transport, with the same CA bundle, so TLS is judged alike

    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    try:  # retries=False: no retry, and a redirect comes back as the 3xx it is
        r = pool.request("GET", host + HEALTHZ, headers=credential.headers(), retries=False,
                         timeout=urllib3.Timeout(total=timeout))
    except urllib3.exceptions.HTTPError as e:
        raise _unreachable(host, e) from None
    if 300 <= r.status < 400:
        location = (r.headers.get("Location") or "?").split("?")[0]
        fix = ("log in again and copy a fresh session cookie" if credential.kind == "cookie" else
               "give the session cookie (--cookie-file or $KFP_SESSION_COOKIE) or a token the gateway accepts")
        raise SubmitError(f"{host} redirected to a login page ({location}): {_tried(credential)}; {fix}")
    if r.status >= 400:
        raise _http_error(r.status, _server_message(r.status, r.data, r.reason or ""), host, namespace,
                          credential, package, r.reason or "")
    try:
        health = json.loads(r.data)
    except ValueError:
        health = None
    if not isinstance(health, dict):
        kind = r.headers.get("Content-Type", "?").split(";")[0]
        raise SubmitError(f"{host}{HEALTHZ} answered {kind}, not the Kubeflow Pipelines API (a login page?): "
                          "check --endpoint and the credential")
    return health


def preflight(endpoint: str | None, credential: Credential, namespace: str,
              environ: Mapping[str, str] | None = None) -> None:
    """Before compiling: probe the host once (check_server), so an unreachable host or a refused
    credential costs no TFX compile. No host (kube-config proxy): nothing to probe. Raises
    SubmitError, masked."""
    host = resolve_host(endpoint, os.environ if environ is None else environ)
    if not host:
        return
    failure = None
    with credentials.masked_logs(credential.secrets()):
        try:
            check_server(host, credential, namespace, "(not compiled yet)")
        except SubmitError as e:
            failure = e
    if failure is not None:  # raised outside the handler: no __context__ with unmasked text
        raise SubmitError(credentials.mask(str(failure), credential.secrets()))


def _explain(error: BaseException, where: str, namespace: str, credential: Credential, package: str) -> Exception:
    """One line for what kfp.Client raised: kfp_server_api's ApiException, urllib3's errors..."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    if isinstance(error, ApiException):
        if not error.status:  # kfp_server_api's wrapper of a TLS failure
            return _unreachable(where, error)
        return _http_error(error.status, _server_message(error.status, error.body, error.reason or ""), where,
                           namespace, credential, package, error.reason or "")
    if isinstance(error, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
        return _unreachable(where, error)
    return SubmitFailed(one_line(error, limit=500))


def submit_kfp(compiled: Compiled, config: PipelineConfig, endpoint: str | None, run_name: str | None = None,
               experiment: str | None = None, enable_caching: bool | None = None, client_cls: Any = None,
               credential: Credential | None = None, environ: Mapping[str, str] | None = None) -> Submitted:
    """Start a run on a Kubeflow Pipelines host, as `credential` in `kubeflow.namespace`.

    endpoint None: $KF_PIPELINES_ENDPOINT or, in a pod, the in-cluster service. credential None:
    `credentials.resolve()` from the environment. On a multi-user server without a namespace set, the
    pod's own namespace is used (a notebook's profile), as kfp does. enable_caching None keeps the
    compiled setting (cached steps are reused); False reruns every step.
    Raises SubmitError (one line with the fix: unreachable host, 401/403 naming the credential's source,
    missing namespace, package rejected) or SubmitFailed (anything else); never with the secret in it.
    """
    env = os.environ if environ is None else environ
    credential = credential or credentials.resolve(environ=env)
    secrets = credential.secrets()
    host = resolve_host(endpoint, env)
    where = host or "the Kubeflow Pipelines of the kube config"
    namespace = config.kubeflow.namespace
    failure: Exception | None = None
    with credentials.masked_logs(secrets):
        try:
            if host:
                health = check_server(host, credential, namespace, compiled.package)
                if health.get("multi_user") is True and not namespace:
                    namespace = credentials.pod_namespace()
                    if not namespace:
                        raise SubmitError(f"{host} is a multi-user Kubeflow: set kubeflow.namespace (or "
                                          "--namespace) to your profile namespace")
            elif credential.kind != "none" and not namespace:
                raise SubmitError("a credential is given but no namespace: set kubeflow.namespace (or "
                                  "--namespace) to your Kubeflow profile")
            if client_cls is None:
                import kfp

                client_cls = kfp.Client
            # kfp prints its own "Experiment details" / "Run details" links, and warns (FutureWarning)
            # that it needs a v2 server, which check_server established; the caller prints one line.
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                client = client_cls(host=host, **({"namespace": namespace} if namespace else {}),
                                    **credential.client_kwargs())
                result = client.create_run_from_pipeline_package(
                    compiled.package, arguments={}, run_name=run_name, experiment_name=experiment,
                    namespace=namespace or None, pipeline_root=compiled.pipeline_root,
                    enable_caching=enable_caching, service_account=config.kubeflow.service_account or None)
        except SubmitError as e:
            failure = e
        except Exception as e:  # noqa: BLE001 - a cluster's many failure types become one line
            failure = _explain(e, where, namespace, credential, compiled.package)
    if failure is not None:
        # Raised here, outside the handler, so no __context__ carries the original (unmasked) text.
        raise type(failure)(credentials.mask(str(failure), secrets))
    return Submitted(run_id=result.run_id, url=run_url(host, result.run_id, env), host=where,
                     namespace=namespace, credential=credential.describe())


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
    namespace = config.kubeflow.namespace or "<profile>"
    return ("submit with: phone2dslr kubeflow ... --endpoint http://<KFP host>   (--no-cache to rerun every step;"
            f" multi-user Kubeflow: --namespace {namespace} --token-file PATH | --cookie-file PATH)"
            f"\n  or: kfp.Client(host=..., namespace={namespace!r}, existing_token=...)"
            f".create_run_from_pipeline_package({compiled.package!r}, arguments={{}}, "
            f"pipeline_root={compiled.pipeline_root!r})\n  or upload it in the KFP UI and set the "
            f"pipeline root to {compiled.pipeline_root}")
