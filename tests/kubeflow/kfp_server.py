"""A stand-in Kubeflow Pipelines API on 127.0.0.1: the v2beta1 endpoints kfp.Client calls, recorded.

It answers what a submit needs (healthz, experiments list/create, runs create, pipelines upload)
with JSON shaped like the real server's (grpc-gateway: errors are {"error", "code", "message"}),
checks the credential and, when multi-user, the namespace, and records every request so a test
can see exactly what the real kfp.Client sent.
"""
from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"


@dataclasses.dataclass
class Seen:
    """One request as the server received it (header names lower-case)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


class FakeKfp:
    """The server and what it is told to do.

    require: headers every request must carry (else 401, the body echoing what came, as some
    gateways do). fail: (method, path) -> (status, message) answered instead of the endpoint.
    redirect: answer everything with a 302 to this login page (a Dex/oauth2-proxy gateway).
    """

    def __init__(self, multi_user: bool = False, require: dict[str, str] | None = None,
                 fail: dict[tuple[str, str], tuple[int, str]] | None = None, redirect: str | None = None):
        self.multi_user, self.require, self.fail, self.redirect = multi_user, require or {}, fail or {}, redirect
        self.seen: list[Seen] = []
        self.experiments: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "FakeKfp":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, seen: Seen) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) for one request."""
        for name, value in self.require.items():
            if seen.headers.get(name.lower()) != value:
                got = seen.headers.get(name.lower(), "nothing")
                return _error(401, f"Unauthenticated: {name} {got} is not valid")
        if (seen.method, seen.path) in self.fail:
            return _error(*self.fail[(seen.method, seen.path)])
        if (seen.method, seen.path) == ("GET", f"{API}/healthz"):
            return 200, {"multi_user": self.multi_user, "pipeline_store": "database"}
        if (seen.method, seen.path) == ("GET", f"{API}/experiments"):
            namespace = seen.query.get("namespace", [""])[0]
            if self.multi_user and not namespace:
                return _error(400, "Invalid input error: in multi-user mode ListExperiments needs a namespace")
            name = json.loads(seen.query["filter"][0])["predicates"][0]["stringValue"]
            found = [e for e in self.experiments if e["display_name"] == name and e["namespace"] == namespace]
            return 200, ({"experiments": found, "total_size": len(found)} if found else {})
        if (seen.method, seen.path) == ("POST", f"{API}/experiments"):
            if self.multi_user and not seen.body.get("namespace"):
                return _error(400, "Invalid input error: experiment namespace is empty in multi-user mode")
            experiment = {**seen.body, "experiment_id": f"exp-{len(self.experiments) + 1}"}
            self.experiments.append(experiment)
            return 200, experiment
        if (seen.method, seen.path) == ("POST", f"{API}/runs"):
            return 200, {**seen.body, "run_id": "run-1", "state": "PENDING"}
        if (seen.method, seen.path) == ("POST", f"{API}/pipelines/upload"):
            return 200, {"pipeline_id": "pipeline-1", "display_name": seen.query.get("name", ["p"])[0]}
        return _error(404, "Not Found")

    def requests_to(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if (s.method, s.path) == (method, API + path)]


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": message, "code": 3, "message": message}


class _Handler(BaseHTTPRequestHandler):
    def _handle(self) -> None:
        fake: FakeKfp = self.server.fake  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:  # multipart upload
            body = raw
        seen = Seen(self.command, url.path, parse_qs(url.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()}, body)
        fake.seen.append(seen)
        if fake.redirect:
            self.send_response(302)
            self.send_header("Location", fake.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, answer = fake.answer(seen)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _handle

    def log_message(self, *args: Any) -> None:  # keep the test output to what the client printed
        pass
