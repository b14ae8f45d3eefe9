"""Submitting to a multi-user Kubeflow: the real kfp.Client against a local stand-in of the KFP API.

The submit must carry the credential (bearer token or session cookie) and the profile namespace;
no output, log record or error may contain the secret; each failure a user meets is one line.
The pipeline compile is replaced by a tiny package here (test_submit.py submits a real one).
"""
from __future__ import annotations

import logging
import socket
import traceback

import pytest

from phone2dslr import cli
from phone2dslr.kubeflow import credentials, runner, submit
from tests.kubeflow.conftest import OVERRIDES, PROFILES, REMOTE, REPO
from tests.kubeflow.kfp_server import FakeKfp

TOKEN = "eyJhbGciOi." + "s3cr3t-t0ken" * 4
COOKIE_VALUE = "MTcwMDAwMDAwMHxfc2Vzc2lvbg" * 2
COOKIE = f"authservice_session={COOKIE_VALUE}"
SECRETS = (TOKEN, COOKIE_VALUE, TOKEN[:credentials.PREFIX_CHARS + 4])
TINY_SPEC = ("pipelineInfo: {name: tiny}\nroot: {dag: {tasks: {}}}\nschemaVersion: 2.1.0\n"
             "sdkVersion: kfp-2.16.1\n")
RUNS = ("POST", "/apis/v2beta1/runs")
pytestmark = pytest.mark.usefixtures("no_cluster_around")


@pytest.fixture
def tiny_compile(tmp_path, monkeypatch):
    """runner.compile_pipeline writes a one-line pipeline spec instead of compiling TFX."""
    package = tmp_path / "tiny.yaml"

    def compile_pipeline(config, package_path=None, until=None):
        package.write_text(TINY_SPEC)
        return runner.Compiled(str(package), "kfp", [], config.pipeline_root)

    monkeypatch.setattr(runner, "compile_pipeline", compile_pipeline)
    return package


def _log_everything(caplog: pytest.LogCaptureFixture) -> None:
    """Capture every record, kfp_server_api's response bodies (its own logger, held at WARNING) too."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kfp_server_api.rest")


def _kubeflow(*extra: str) -> int:
    argv = ["kubeflow", "--config", str(REPO / "configs" / "demo.yaml"), "--profile", str(PROFILES["kfp"])]
    return cli.main(argv + sum((["--set", o] for o in OVERRIDES), []) + list(extra))


def _assert_no_secret(capsys, caplog, *more: str) -> tuple[str, str]:
    out, err = capsys.readouterr()
    logged = caplog.text + " ".join(r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        for where, text in (("stdout", out), ("stderr", err), ("log", logged)) + tuple(("error", m) for m in more):
            assert secret not in text, f"the secret leaked into {where}: {text!r}"
    return out, err


def test_token_file_submit_sends_bearer_and_namespace(tmp_path, tiny_compile, capsys, caplog):
    _log_everything(caplog)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with FakeKfp(multi_user=True, require={"Authorization": f"Bearer {TOKEN}"}) as server:
        rc = _kubeflow("--endpoint", server.url, "--namespace", "alice", "--token-file", str(token_file),
                       "--run-name", "nightly", "--experiment", "dped", "--no-cache")
    out, err = _assert_no_secret(capsys, caplog)
    assert rc == 0, err
    assert all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in server.seen)
    # healthz twice: once before the compile (submit.preflight), once before the client starts
    assert [s.path.rsplit("/", 1)[1] for s in server.seen] == ["healthz", "healthz", "experiments", "experiments", "runs"]
    (listed,) = server.requests_to("GET", "/experiments")
    assert listed.query["namespace"] == ["alice"]
    (created,) = server.requests_to("POST", "/experiments")
    assert created.body["namespace"] == "alice" and created.body["display_name"] == "dped"
    (run,) = server.requests_to("POST", "/runs")
    assert run.body["experiment_id"] == "exp-1" and run.body["display_name"] == "nightly"
    assert run.body["runtime_config"]["pipeline_root"] == REMOTE[0]
    assert (f"submitted run run-1 to {server.url} (namespace alice; the token from --token-file {token_file})"
            in out)
    assert f"{server.url}/#/runs/details/run-1" in out


def test_session_cookie_from_the_environment(monkeypatch, tiny_compile, capsys, caplog):
    _log_everything(caplog)
    monkeypatch.setenv("KFP_SESSION_COOKIE", COOKIE)
    with FakeKfp(multi_user=True, require={"Cookie": COOKIE}) as server:
        rc = _kubeflow("--endpoint", server.url + "/", "--set", "kubeflow.namespace=bob")
    out, err = _assert_no_secret(capsys, caplog)
    assert rc == 0, err
    assert all(s.headers["cookie"] == COOKIE and "authorization" not in s.headers for s in server.seen)
    assert server.requests_to("POST", "/experiments")[0].body["namespace"] == "bob"
    assert "the session cookie from $KFP_SESSION_COOKIE" in out


def test_notebook_in_the_cluster_uses_the_service_account_token_and_its_namespace(tmp_path, monkeypatch, capsys,
                                                                                  caplog):
    """A Kubeflow notebook with the access-ml-pipeline PodDefault: token path variable, pod namespace."""
    (tmp_path / "sa-token").write_text(TOKEN)
    (tmp_path / "pod-namespace").write_text("carol\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "sa-token"))
    monkeypatch.setenv("KFP_BEARER_TOKEN", "not-this-one")  # lower in the documented order
    monkeypatch.setattr(credentials, "POD_NAMESPACE_FILE", str(tmp_path / "pod-namespace"))
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY_SPEC)
    config = runner.load_config(str(REPO / "configs" / "demo.yaml"), str(PROFILES["kfp"]), OVERRIDES)
    with FakeKfp(multi_user=True, require={"Authorization": f"Bearer {TOKEN}"}) as server:
        monkeypatch.setenv("KF_PIPELINES_ENDPOINT", server.url)  # stands in for the in-cluster service
        run = submit.submit_kfp(runner.Compiled(str(tiny), "kfp", [], REMOTE[0]), config, None)
    _assert_no_secret(capsys, caplog, repr(run))
    assert run.namespace == "carol" and run.url == f"{server.url}/#/runs/details/run-1"
    assert run.credential.startswith("the token from $KF_PIPELINES_SA_TOKEN_PATH")
    assert server.requests_to("GET", "/experiments")[0].query["namespace"] == ["carol"]


def test_credential_order_and_refusals(tmp_path, monkeypatch):
    (tmp_path / "t").write_text(TOKEN)
    (tmp_path / "c").write_text(f"Cookie: {COOKIE}\n")
    env = {"KFP_BEARER_TOKEN": f"Bearer {TOKEN}", "KFP_SESSION_COOKIE": COOKIE}
    assert credentials.resolve(str(tmp_path / "t"), environ=env).source == f"--token-file {tmp_path / 't'}"
    cookie = credentials.resolve(cookie_file=str(tmp_path / "c"), environ=env)
    assert (cookie.kind, cookie.value) == ("cookie", COOKIE)
    assert credentials.resolve(environ=env).value == TOKEN  # "Bearer " is what kfp adds itself
    assert credentials.resolve(environ={"KFP_SESSION_COOKIE": COOKIE}).kind == "cookie"
    assert credentials.resolve(environ={}) is credentials.NO_CREDENTIAL
    for kwargs, message in [({"token_file": "t", "cookie_file": "c"}, "not both"),
                            ({"token_file": str(tmp_path / "none")}, "no such file"),
                            ({"environ": {"KFP_SESSION_COOKIE": COOKIE_VALUE}}, "name=value"),
                            ({"environ": {"KF_PIPELINES_SA_TOKEN_PATH": str(tmp_path)}}, "cannot read")]:
        with pytest.raises(credentials.CredentialError, match=message) as caught:
            credentials.resolve(**kwargs)
        assert COOKIE_VALUE not in str(caught.value)
    sa_default = tmp_path / "sa"
    sa_default.write_text(TOKEN)
    monkeypatch.setattr(credentials, "SA_TOKEN_DEFAULT", str(sa_default))  # mounted, variable unset
    assert credentials.resolve(environ=env).source.endswith(str(sa_default))
    assert TOKEN not in repr(credentials.resolve(environ=env))


def test_service_account_names_are_kfps_own(monkeypatch):
    import kfp.client

    monkeypatch.undo()  # the fixture points SA_TOKEN_DEFAULT elsewhere
    assert credentials.SA_TOKEN_ENV == kfp.client.KF_PIPELINES_SA_TOKEN_ENV
    assert credentials.SA_TOKEN_DEFAULT == kfp.client.KF_PIPELINES_SA_TOKEN_PATH
    assert credentials.POD_NAMESPACE_FILE == kfp.client.Client._NAMESPACE_PATH
    assert submit.IN_CLUSTER_HOST == "http://" + kfp.client.Client._IN_CLUSTER_DNS_NAME.format("kubeflow")


def test_mask_hides_the_secret_and_its_cut_off_start():
    text = f"bad token {TOKEN}; header was Bearer {TOKEN[:20]}...; cookie {COOKIE_VALUE[:9]}"
    masked = credentials.mask(text, [TOKEN, COOKIE_VALUE])
    assert masked == "bad token ***; header was Bearer ***...; cookie ***"


def test_log_records_made_during_a_submit_are_masked(caplog):
    """kfp logs failed requests with logging.exception; a server may echo the secret in them."""
    _log_everything(caplog)
    with credentials.masked_logs([TOKEN]):
        logging.getLogger("kfp_server_api.rest").debug("response body: %s", f'{{"error": "bad {TOKEN}"}}')
        try:
            raise RuntimeError(f"(401) HTTP response body: token {TOKEN[:15]} expired")
        except RuntimeError:
            logging.exception("Failed to get healthz info attempt %d of %d.", 1, 5)
    logging.getLogger("after").warning("unmasked again: %s", "tok")
    assert TOKEN[:credentials.PREFIX_CHARS] not in caplog.text and caplog.text.count("***") == 2
    assert "response body" in caplog.text and "RuntimeError: (401)" in caplog.text
    assert caplog.records[-1].getMessage() == "unmasked again: tok"


def test_a_failed_submit_raises_one_masked_error_without_the_original_attached(tmp_path, monkeypatch):
    (tmp_path / "tiny.yaml").write_text(TINY_SPEC)
    monkeypatch.setenv("KFP_BEARER_TOKEN", TOKEN)
    config = runner.load_config(str(REPO / "configs" / "demo.yaml"), str(PROFILES["kfp"]),
                                OVERRIDES + ["kubeflow.namespace=alice"])
    compiled = runner.Compiled(str(tmp_path / "tiny.yaml"), "kfp", [], REMOTE[0])
    with FakeKfp(multi_user=True, fail={RUNS: (401, f"token {TOKEN} expired")}) as server:
        with pytest.raises(submit.SubmitError) as caught:
            submit.submit_kfp(compiled, config, server.url)
    error = caught.value
    assert error.__context__ is None and error.__cause__ is None  # the ApiException's text stays behind
    text = "".join(traceback.format_exception(error))
    assert "401 Unauthorized" in text and "$KFP_BEARER_TOKEN" in text
    assert TOKEN[:credentials.PREFIX_CHARS] not in text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ERRORS = {  # name: (server factory, CLI arguments besides --endpoint, what the line must say)
    "unreachable host": (None, ["--namespace", "alice"], ["cannot reach http://127.0.0.1:", "connection refused",
                                                          "port-forward"]),
    "401 refused token": (lambda: FakeKfp(multi_user=True, require={"Authorization": "Bearer other"}),
                          ["--namespace", "alice"], ["401 Unauthorized", "the token from --token-file",
                                                     "create token"]),
    "401 no credential": (lambda: FakeKfp(multi_user=True, require={"Authorization": "Bearer other"}),
                          ["--namespace", "alice", "--no-credential"], ["401", "no credential was sent",
                                                                        "--token-file PATH"]),
    "403 forbidden namespace": (lambda: FakeKfp(multi_user=True,
                                                fail={RUNS: (403, f"User cannot access alice: {TOKEN}")}),
                                ["--namespace", "alice"], ["403 Forbidden", "the token from --token-file",
                                                           "namespace alice", "contributor"]),
    "missing namespace": (lambda: FakeKfp(multi_user=True), [], ["multi-user", "set kubeflow.namespace"]),
    "namespace refused": (lambda: FakeKfp(multi_user=True, fail={("GET", "/apis/v2beta1/experiments"):
                                                        (400, "namespace alice does not exist")}),
                          ["--namespace", "alice"], ["refused namespace alice", "a profile you belong to"]),
    "package rejected": (lambda: FakeKfp(fail={RUNS: (400, "Invalid input error: pipeline spec is invalid")}), [],
                         ["rejected the run (400: Invalid input error: pipeline spec is invalid)", "tiny.yaml"]),
    "login page": (lambda: FakeKfp(redirect="/dex/auth?client_id=kubeflow-oidc-authservice&state=x"),
                   ["--namespace", "alice"], ["redirected to a login page (/dex/auth)", "session cookie"]),
}


PREFLIGHT_ERRORS = {"unreachable host", "401 refused token", "401 no credential", "login page"}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_each_submit_error_is_one_line_with_the_fix(name, tmp_path, tiny_compile, capsys, caplog):
    _log_everything(caplog)
    make_server, args, says = ERRORS[name]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    credential = [] if "--no-credential" in args else ["--token-file", str(token_file)]
    args = [a for a in args if a != "--no-credential"] + credential
    if make_server is None:
        rc = _kubeflow("--endpoint", f"http://127.0.0.1:{_closed_port()}", *args)
    else:
        with make_server() as server:
            rc = _kubeflow("--endpoint", server.url, *args)
    out, err = _assert_no_secret(capsys, caplog)
    # What the health probe already refuses is said before the compile (submit.preflight).
    early = name in PREFLIGHT_ERRORS
    prefix = "submit failed (nothing compiled): " if early else "submit failed (the package is written): "
    assert rc == 2 and err.count("\n") == 1 and err.startswith(prefix), err
    for fragment in says:
        assert fragment in err
    assert tiny_compile.exists() != early


@pytest.mark.parametrize("args, says", [
    (["--token", TOKEN], "not taken on the command line"),
    (["--token-file", "/no/such/token"], "config error: --token-file /no/such/token: no such file"),
    (["--endpoint", "localhost:8080"], "error: endpoint localhost:8080 (--endpoint or $KF_PIPELINES_ENDPOINT): "
                                       "give the scheme, e.g. http://localhost:8080"),
    (["--set", "kubeflow.namespace=Alice_1"], "config error: kubeflow.namespace 'Alice_1'"),
])
def test_argument_mistakes_are_one_line_before_compiling(args, says, tiny_compile, capsys, caplog):
    endpoint = [] if "--endpoint" in args else ["--endpoint", "http://127.0.0.1:1"]
    assert _kubeflow(*endpoint, *args) == 2
    out, err = _assert_no_secret(capsys, caplog)
    assert err.count("\n") == 1 and says in err and not tiny_compile.exists()
