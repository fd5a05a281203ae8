"""The one place meshlab talks HTTP to a Kubernetes API server: the official client's transport,
typed (dict in, dict out), with every failure mapped once to `ClusterError`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias
from urllib.parse import quote, urlencode

from meshlab.errors import ClusterError, MissingDependency

Manifest: TypeAlias = dict[str, Any]
"""A Kubernetes object as JSON (`apiVersion`, `kind`, `metadata`, ...): the shape is the API
server's, so values stay untyped; read nested fields with `.get(...) or {}`."""


class HostConfig(Protocol):
    """What meshlab reads of `kubernetes.client.Configuration`."""

    host: str


class HttpResponse(Protocol):
    """What meshlab reads of the client's REST response."""

    status: int
    reason: str | None

    def read(self) -> bytes | None: ...


class ApiClient(Protocol):
    """What meshlab uses of `kubernetes.client.ApiClient` (its transport, not its models)."""

    configuration: HostConfig

    def close(self) -> None: ...

    def param_serialize(self, method: str, resource_path: str, *,
                        header_params: dict[str, str] | None = None, body: object = None,
                        auth_settings: list[str] | None = None,
                        ) -> tuple[str, str, dict[str, str], str | None, list[str]]: ...

    def call_api(self, method: str, url: str, header_params: dict[str, str] | None = None,
                 body: str | None = None, *,
                 _request_timeout: float | None = None) -> HttpResponse: ...


def _kubernetes() -> Any:
    try:
        import kubernetes
    except ImportError:  # pragma: no cover - the extra is a documented install step
        raise MissingDependency("the Kubernetes client (kubernetes)",
                                install="pip install 'meshlab[k8s]'") from None
    return kubernetes


@dataclass(frozen=True, slots=True)
class ResourceType:
    """An API resource as discovery names it (`apps/v1`, `Deployment`, `deployments`)."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, *, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


def describe(kind: str, name: str | None = None, namespace: str | None = None) -> str:
    """`Deployment bench/server`: how errors name an object."""
    who = f"{namespace}/{name}" if namespace and name else (name or (f"{namespace}/*" if namespace
                                                                      else "*"))
    return f"{kind} {who}"


def map_api_error(exc: BaseException, *, resource: str, server: str = "") -> ClusterError:
    """Map a failure of the client or its transport to one ClusterError (status, reason, resource).

    A Status body's `reason` and `message` are kept: `Forbidden: pods is forbidden: User "x"
    cannot list resource "pods" in the namespace "bench"` says both what and why."""
    k8s = _kubernetes()
    api_exc = k8s.client.exceptions.ApiException
    if isinstance(exc, api_exc):
        status = int(exc.status) if exc.status else None
        reason = str(exc.reason or "") or None
        message = ""
        body = exc.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if body:
            try:
                doc = json.loads(body)
            except ValueError:
                message = str(body)[:300]
            else:
                if isinstance(doc, dict):
                    message = str(doc.get("message") or "")
                    reason = str(doc.get("reason") or reason or "") or None
        if status == 0 or status is None:
            return ClusterError(f"the API server {server} could not be reached: {reason or exc}",
                                status=None, reason="Unreachable", resource=resource)
        hint = _HINTS.get(status, "")
        return ClusterError(f"{resource}: {message or reason or 'request failed'}{hint}",
                            status=status, reason=reason, resource=resource)
    import urllib3.exceptions

    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
        return ClusterError(
            f"cannot reach the API server {server}: {cause}; check that the cluster is running "
            f"and that the kubeconfig context points at it", reason="Unreachable",
            resource=resource)
    return ClusterError(f"{resource}: {type(exc).__name__}: {exc}", resource=resource)


_HINTS = {
    401: " (the credentials of this context were refused; refresh them)",
    403: " (the context's user lacks RBAC permission for this; use another context or ask for a "
         "Role granting it)",
}


class ApiTransport:
    """Thin typed wrapper over `kubernetes.client.ApiClient`: JSON requests, text for logs."""

    def __init__(self, api_client: ApiClient, *, request_timeout_s: float = 30.0) -> None:
        self._api = api_client
        self.request_timeout_s = request_timeout_s
        self.server = str(api_client.configuration.host)

    def close(self) -> None:
        with contextlib.suppress(Exception):   # closing a pool must never mask the real error
            self._api.close()

    def request_raw(self, method: str, path: str, *, resource: str,
                    query: Mapping[str, str | int | bool] | None = None,
                    body: object = None, content_type: str = "application/json",
                    accept: str = "application/json",
                    timeout_s: float | None = None) -> tuple[int, bytes]:
        """Send one request; a non-2xx answer or a transport failure raises ClusterError."""
        k8s = _kubernetes()
        q = {k: (str(v).lower() if isinstance(v, bool) else str(v))
             for k, v in (query or {}).items()}
        url_path = path + (f"?{urlencode(q)}" if q else "")
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            _, url, hdrs, ser_body, _ = self._api.param_serialize(
                method=method, resource_path=url_path, header_params=headers, body=body,
                auth_settings=["BearerToken"])
            resp = self._api.call_api(method, url, header_params=hdrs, body=ser_body,
                                      _request_timeout=timeout_s or self.request_timeout_s)
            data = resp.read() or b""
        except Exception as exc:  # the transport's own exception zoo, mapped once here
            raise map_api_error(exc, resource=resource, server=self.server) from exc
        status = int(resp.status)
        if not 200 <= status < 300:
            err = k8s.client.exceptions.ApiException(status=status, reason=resp.reason)
            err.body = data
            raise map_api_error(err, resource=resource, server=self.server)
        return status, data

    def request(self, method: str, path: str, *, resource: str,
                query: Mapping[str, str | int | bool] | None = None, body: object = None,
                content_type: str = "application/json",
                timeout_s: float | None = None) -> Manifest:
        _, data = self.request_raw(method, path, resource=resource, query=query, body=body,
                                   content_type=content_type, timeout_s=timeout_s)
        if not data:
            return {}
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise ClusterError(f"{resource}: the API server answered with non-JSON "
                               f"{data[:120]!r}", resource=resource) from exc
        if not isinstance(doc, dict):
            raise ClusterError(f"{resource}: expected a JSON object", resource=resource)
        return doc
