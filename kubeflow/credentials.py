"""Who a Kubeflow Pipelines submit acts as: the credential, the profile namespace, and masking.

A multi-user Kubeflow (Istio + Dex / oauth2-proxy, one profile namespace per user) refuses a run
without the user's credential and namespace. The credential comes from the places KFP users already
use, first found wins:

1. `--token-file PATH`: a bearer token (e.g. `kubectl -n <profile> create token default-editor`);
2. `--cookie-file PATH`: a gateway session cookie, `name=value` (`authservice_session=...` behind
   Dex + oidc-authservice, `oauth2_proxy_kubeflow=...` behind oauth2-proxy);
   (the two options are explicit, so they come before the environment; giving both is an error)
3. `$KF_PIPELINES_SA_TOKEN_PATH`, or kfp's default path when that file exists: the projected
   service-account token kfp.Client reads in a pod (Kubeflow's `access-ml-pipeline` PodDefault);
4. `$KFP_BEARER_TOKEN`: a bearer token;
5. `$KFP_SESSION_COOKIE`: a session cookie, `name=value`.

Secrets are never taken as command-line values (shell history, `ps`) nor from the config file, and
never printed: messages name the source, and `mask` / `masked_logs` replace the value wherever a
server or library could echo it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import traceback
from typing import Iterable, Iterator, Mapping

from phone2dslr.config import ConfigError

TOKEN_ENV = "KFP_BEARER_TOKEN"
COOKIE_ENV = "KFP_SESSION_COOKIE"
# kfp's own names (kfp.client.KF_PIPELINES_SA_TOKEN_ENV / _PATH), repeated so that resolving a
# credential needs no kfp import; a test keeps them equal.
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
SA_TOKEN_DEFAULT = "/var/run/secrets/kubeflow/pipelines/token"
# Every pod's own namespace; a Kubeflow notebook runs in its user's profile namespace.
POD_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
MASK = "***"
# A server that echoes a cut-off secret still shows its start: runs that begin with this many of
# its first characters are masked too.
PREFIX_CHARS = 8


class CredentialError(ConfigError):
    """A credential source that is set but unusable; the message names the source, never the value."""


@dataclasses.dataclass(frozen=True)
class Credential:
    """A bearer token or session cookie and where it came from (the value stays out of repr)."""

    kind: str  # token | cookie | none
    source: str  # for messages: "--token-file ~/.kfp-token", "$KFP_BEARER_TOKEN", ...
    value: str = dataclasses.field(default="", repr=False)

    def describe(self) -> str:
        """What was tried, for one-line messages: names the source, never the value."""
        if self.kind == "none":
            return (f"no credential was sent (none of --token-file, --cookie-file, ${SA_TOKEN_ENV}, "
                    f"${TOKEN_ENV}, ${COOKIE_ENV} is set)")
        return f"the {'token' if self.kind == 'token' else 'session cookie'} from {self.source}"

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for kfp.Client: existing_token (sent as `Bearer`) or cookies."""
        return {"token": {"existing_token": self.value}, "cookie": {"cookies": self.value}}.get(self.kind, {})

    def headers(self) -> dict[str, str]:
        """The HTTP headers kfp.Client sends for this credential."""
        return {"token": {"Authorization": f"Bearer {self.value}"},
                "cookie": {"Cookie": self.value}}.get(self.kind, {})

    def secrets(self) -> list[str]:
        """Strings to mask: the whole value and, for cookies, each cookie's value alone."""
        if self.kind == "none":
            return []
        parts = [self.value]
        if self.kind == "cookie":
            parts += [c.partition("=")[2].strip() for c in self.value.split(";")]
        return [p for p in parts if p]


NO_CREDENTIAL = Credential("none", "none")


def _clean(value: str, kind: str, source: str) -> str:
    """The secret without the wrapping people copy with it; refuses what cannot be one header."""
    value = value.strip()
    for wrapper in ("authorization:", "bearer ") if kind == "token" else ("cookie:",):
        if value.lower().startswith(wrapper):  # a header line copied whole ("Authorization: Bearer x")
            value = value[len(wrapper):].strip()
    if not value:
        raise CredentialError(f"{source} is empty")
    if "\n" in value or "\r" in value:
        raise CredentialError(f"{source} holds more than one line: it must hold the {kind} alone")
    if kind == "cookie" and "=" not in value:
        raise CredentialError(f"{source}: expected a cookie as name=value (authservice_session=... behind "
                              "Dex, oauth2_proxy_kubeflow=... behind oauth2-proxy), copied after logging in")
    return value


def _read(path: str, kind: str, source: str) -> str:
    """A secret file's content, cleaned; errors say which file and why, never what is in it."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise CredentialError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "not a text file"
        raise CredentialError(f"{source}: cannot read it ({reason})") from None
    return _clean(text, kind, source)


def resolve(token_file: str | None = None, cookie_file: str | None = None,
            environ: Mapping[str, str] | None = None) -> Credential:
    """The credential of a submit, from the first source set, in the module docstring's order.

    Returns NO_CREDENTIAL when none is set (a single-user KFP, or a port-forward that needs none).
    Raises CredentialError when a source is set but unusable (missing or empty file, a cookie that is
    not name=value, both options given), naming the source and never the value.
    """
    env = os.environ if environ is None else environ
    if token_file and cookie_file:
        raise CredentialError("give --token-file or --cookie-file, not both")
    if token_file:
        source = f"--token-file {token_file}"
        return Credential("token", source, _read(token_file, "token", source))
    if cookie_file:
        source = f"--cookie-file {cookie_file}"
        return Credential("cookie", source, _read(cookie_file, "cookie", source))
    if env.get(SA_TOKEN_ENV):
        source = f"${SA_TOKEN_ENV} ({env[SA_TOKEN_ENV]})"
        return Credential("token", source, _read(env[SA_TOKEN_ENV], "token", source))
    if os.path.isfile(SA_TOKEN_DEFAULT):  # mounted without the variable: kfp reads it there too
        source = f"the service-account token at {SA_TOKEN_DEFAULT}"
        return Credential("token", source, _read(SA_TOKEN_DEFAULT, "token", source))
    if env.get(TOKEN_ENV):
        return Credential("token", f"${TOKEN_ENV}", _clean(env[TOKEN_ENV], "token", f"${TOKEN_ENV}"))
    if env.get(COOKIE_ENV):
        return Credential("cookie", f"${COOKIE_ENV}", _clean(env[COOKIE_ENV], "cookie", f"${COOKIE_ENV}"))
    return NO_CREDENTIAL


def pod_namespace() -> str:
    """The namespace of the pod this runs in ('' outside a pod): a notebook's profile namespace.

    kfp.Client falls back to the same file on a multi-user server when no namespace is given.
    """
    try:
        with open(POD_NAMESPACE_FILE, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret, and every run that starts like one, replaced by MASK."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        start = secret[:PREFIX_CHARS]
        i = text.find(start)
        while i >= 0:
            end = i + len(start)
            while end < len(text) and end - i < len(secret) and text[end] == secret[end - i]:
                end += 1
            text = text[:i] + MASK + text[end:]
            i = text.find(start, i + len(MASK))
    return text


@contextlib.contextmanager
def masked_logs(secrets: Iterable[str]) -> Iterator[None]:
    """Mask `secrets` in every log record made during the block, message and traceback alike.

    kfp logs failed requests with logging.exception, and kfp_server_api logs response bodies at
    DEBUG; a server may echo the credential in either. The record factory sees every record before
    any handler (ours, pytest's, a notebook's), wherever the logger sits in the tree.
    """
    secrets = [s for s in secrets if s]
    previous = logging.getLogRecordFactory()
    if not secrets:
        yield
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad %-format is the caller's bug; still mask what is there
            message = f"{record.msg} {record.args}"
        record.msg, record.args = mask(message, secrets), None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatters use exc_text when set; the exception object itself is dropped.
            record.exc_text = mask("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"), secrets)
            record.exc_info = None
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)
