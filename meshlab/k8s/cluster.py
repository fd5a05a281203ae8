"""Cluster access: kubeconfig contexts (and in-cluster config), discovery, server-side apply with
rollback, label-selected listing, pod logs, polling waits that name the object and its last
condition, and clean deletion. Everything is dicts in and out; errors are `ClusterError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshlab.errors import ClusterError
from meshlab.k8s._api import ApiClient, ApiTransport, ResourceType, _kubernetes, describe
from meshlab.k8s._api import Manifest as Manifest  # public here: what adapters render
from meshlab.k8s._wait import Waits

FIELD_MANAGER = "meshlab"
Selector = Mapping[str, str] | str | None


@dataclass(slots=True)
class ApplyLog:
    """What `Cluster.apply_all` applied, each with the object as it was before (None: it was
    created), so `Cluster.undo` can take back several calls as one."""

    entries: list[tuple[Mapping[str, Any], str | None, Manifest | None]] = field(
        default_factory=list)
    left: list[str] = field(default_factory=list)   # what an undo could not restore

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True, slots=True)
class KubeContext:
    """One kubeconfig context."""

    name: str
    cluster: str
    user: str
    namespace: str
    current: bool


def list_contexts(kubeconfig: str | Path | None = None) -> list[KubeContext]:
    """The contexts of a kubeconfig file (default: $KUBECONFIG or ~/.kube/config)."""
    k8s = _kubernetes()
    try:
        contexts, active = k8s.config.list_kube_config_contexts(
            config_file=str(kubeconfig) if kubeconfig else None)
    except (k8s.config.ConfigException, OSError) as exc:
        raise ClusterError(f"cannot read kubeconfig {kubeconfig or '(default)'}: {exc}",
                           reason="KubeconfigInvalid") from exc
    active_name = (active or {}).get("name")
    out = []
    for c in contexts or []:
        ctx = c.get("context") or {}
        out.append(KubeContext(name=str(c.get("name")), cluster=str(ctx.get("cluster", "")),
                               user=str(ctx.get("user", "")),
                               namespace=str(ctx.get("namespace") or "default"),
                               current=c.get("name") == active_name))
    return out


def label_selector(selector: Selector) -> str | None:
    """`{"app": "server"}` -> `app=server`; strings pass through (`app in (a,b)`)."""
    if selector is None or isinstance(selector, str):
        return selector or None
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or None


class Cluster(Waits):
    """A connection to one Kubernetes API server (one kubeconfig context)."""

    def __init__(self, api_client: ApiClient, *, context: str = "", namespace: str = "default",
                 request_timeout_s: float = 30.0) -> None:
        self.api = ApiTransport(api_client, request_timeout_s=request_timeout_s)
        self.context = context
        self.namespace = namespace
        self._types: dict[tuple[str, str], ResourceType] = {}

    # construction ------------------------------------------------------------------------
    @classmethod
    def connect(cls, *, context: str | None = None, kubeconfig: str | Path | None = None,
                in_cluster: bool = False, request_timeout_s: float = 30.0) -> Cluster:
        """Connect with a kubeconfig context (default: the current one) or the pod's service
        account (`in_cluster=True`). Does not contact the server; `server_version()` does."""
        k8s = _kubernetes()
        cfg = k8s.client.Configuration()
        namespace = "default"
        if in_cluster:
            try:
                k8s.config.load_incluster_config(client_configuration=cfg)
            except k8s.config.ConfigException as exc:
                raise ClusterError(f"not running in a pod with a service account: {exc}",
                                   reason="NotInCluster") from exc
            ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            if ns_file.exists():
                namespace = ns_file.read_text().strip() or "default"
            name = "in-cluster"
        else:
            contexts = list_contexts(kubeconfig)
            names = [c.name for c in contexts]
            if context is not None and context not in names:
                raise ClusterError(
                    f"context {context!r} is not in kubeconfig {kubeconfig or '(default)'}; "
                    f"available: {', '.join(names) or 'none'}", reason="ContextNotFound",
                    resource=f"context {context}")
            chosen = next((c for c in contexts if c.name == context or
                           (context is None and c.current)), None)
            if chosen is None:
                raise ClusterError("the kubeconfig has no current context; pass context=...",
                                   reason="ContextNotFound")
            try:
                k8s.config.load_kube_config(config_file=str(kubeconfig) if kubeconfig else None,
                                            context=chosen.name, client_configuration=cfg)
            except (k8s.config.ConfigException, OSError) as exc:
                raise ClusterError(f"cannot load context {chosen.name!r}: {exc}",
                                   reason="KubeconfigInvalid") from exc
            name, namespace = chosen.name, chosen.namespace
        cfg.retries = 1
        return cls(k8s.client.ApiClient(cfg), context=name, namespace=namespace,
                   request_timeout_s=request_timeout_s)

    @classmethod
    def from_url(cls, url: str, *, token: str | None = None, verify_tls: bool = True,
                 request_timeout_s: float = 30.0) -> Cluster:
        """Connect straight to an API server URL (tests, port-forwards)."""
        k8s = _kubernetes()
        cfg = k8s.client.Configuration()
        cfg.host = url.rstrip("/")
        cfg.verify_ssl = verify_tls
        cfg.retries = 0
        if token:
            cfg.api_key = {"authorization": f"Bearer {token}"}
        return cls(k8s.client.ApiClient(cfg), context=url, request_timeout_s=request_timeout_s)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # discovery ---------------------------------------------------------------------------
    def server_version(self) -> dict[str, str]:
        doc = self.api.request("GET", "/version", resource="version")
        return {k: str(v) for k, v in doc.items()}

    def resource_type(self, api_version: str, kind: str) -> ResourceType:
        """Discover plural and scope of a kind (cached); a kind the server does not serve (a
        mesh's CRDs not installed) raises ClusterError with reason NotServed."""
        key = (api_version, kind)
        if key in self._types:
            return self._types[key]
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            doc = self.api.request("GET", path, resource=f"apiVersion {api_version}")
        except ClusterError as exc:
            if exc.status == 404:
                raise ClusterError(f"the server does not serve {api_version} (kind {kind}); "
                                   f"install the CRDs that define it", status=404,
                                   reason="NotServed", resource=f"{kind}.{api_version}") from exc
            raise
        for r in doc.get("resources") or []:
            if "/" in str(r.get("name", "")):
                continue
            rt = ResourceType(api_version, str(r.get("kind")), str(r["name"]),
                              bool(r.get("namespaced")))
            self._types[(api_version, rt.kind)] = rt
        if key not in self._types:
            raise ClusterError(f"{api_version} has no kind {kind}", status=404,
                               reason="NotServed", resource=f"{kind}.{api_version}")
        return self._types[key]

    def _type_of(self, manifest: Mapping[str, Any]) -> ResourceType:
        try:
            return self.resource_type(str(manifest["apiVersion"]), str(manifest["kind"]))
        except KeyError as exc:
            raise ClusterError(f"manifest without {exc.args[0]}: {str(manifest)[:120]}",
                               reason="Invalid") from None

    def _ns(self, rt: ResourceType, namespace: str | None) -> str | None:
        return (namespace or self.namespace) if rt.namespaced else None

    # reading -----------------------------------------------------------------------------
    def get(self, api_version: str, kind: str, name: str, *,
            namespace: str | None = None) -> Manifest:
        rt = self.resource_type(api_version, kind)
        ns = self._ns(rt, namespace)
        return self.api.request("GET", rt.path(namespace=ns, name=name),
                                resource=describe(kind, name, ns))

    def find(self, api_version: str, kind: str, name: str, *,
             namespace: str | None = None) -> Manifest | None:
        """Like `get` but None when the object does not exist."""
        try:
            return self.get(api_version, kind, name, namespace=namespace)
        except ClusterError as exc:
            if exc.status == 404 and exc.reason != "NotServed":
                return None
            raise

    def list_objects(self, api_version: str, kind: str, *, namespace: str | None = None,
             selector: Selector = None, field_selector: str | None = None,
             all_namespaces: bool = False) -> list[Manifest]:
        rt = self.resource_type(api_version, kind)
        ns = None if all_namespaces else self._ns(rt, namespace)
        query: dict[str, str] = {}
        if (ls := label_selector(selector)) is not None:
            query["labelSelector"] = ls
        if field_selector:
            query["fieldSelector"] = field_selector
        doc = self.api.request("GET", rt.path(namespace=ns), query=query,
                               resource=describe(kind, None, ns))
        items = doc.get("items") or []
        for item in items:   # list items carry no apiVersion/kind; put them back
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return list(items)

    def pods(self, *, namespace: str | None = None, selector: Selector = None) -> list[Manifest]:
        return self.list_objects("v1", "Pod", namespace=namespace, selector=selector)

    def nodes(self) -> list[Manifest]:
        return self.list_objects("v1", "Node")

    def pod_logs(self, name: str, *, namespace: str | None = None, container: str | None = None,
                 tail_lines: int | None = None) -> str:
        ns = namespace or self.namespace
        query: dict[str, str | int] = {}
        if container:
            query["container"] = container
        if tail_lines is not None:
            query["tailLines"] = tail_lines
        rt = self.resource_type("v1", "Pod")
        _, data = self.api.request_raw("GET", rt.path(namespace=ns, name=name, subresource="log"),
                                       query=query, accept="text/plain",
                                       resource=describe("Pod", name, ns) + " logs")
        return data.decode("utf-8", "replace")

    # writing -----------------------------------------------------------------------------
    def apply(self, manifest: Mapping[str, Any], *, namespace: str | None = None,
              field_manager: str = FIELD_MANAGER, force: bool = True,
              dry_run: bool = False) -> Manifest:
        """Server-side apply one manifest (creates or updates; fields this manager set before
        and no longer sets are removed by the server)."""
        rt = self._type_of(manifest)
        meta = dict(manifest.get("metadata") or {})
        name = meta.get("name")
        if not name:
            raise ClusterError(f"{rt.kind} manifest has no metadata.name", reason="Invalid")
        ns = self._ns(rt, meta.get("namespace") or namespace)
        body = dict(manifest)
        if ns:
            body["metadata"] = {**meta, "namespace": ns}
        query: dict[str, str | bool] = {"fieldManager": field_manager, "force": force,
                                        "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        return self.api.request("PATCH", rt.path(namespace=ns, name=name), query=query,
                                body=body, content_type="application/apply-patch+yaml",
                                resource=describe(rt.kind, name, ns))

    def apply_all(self, manifests: Iterable[Mapping[str, Any]], *,
                  namespace: str | None = None, field_manager: str = FIELD_MANAGER,
                  log: ApplyLog | None = None) -> list[Manifest]:
        """Apply manifests in order; if one fails, undo the ones already applied (delete what
        was created, restore what was changed) and re-raise; the error's `not_restored` names
        what the undo could not take back. With `log`, what succeeded is recorded there so
        several calls can be undone as one."""
        done = ApplyLog()
        out: list[Manifest] = []
        try:
            for m in manifests:
                rt = self._type_of(m)
                meta = m.get("metadata") or {}
                ns = self._ns(rt, meta.get("namespace") or namespace)
                before = self.find(rt.api_version, rt.kind, str(meta.get("name", "")),
                                   namespace=ns)
                out.append(self.apply(m, namespace=namespace, field_manager=field_manager))
                done.entries.append((m, ns, before))
        except ClusterError as exc:
            exc.not_restored = tuple(self.undo(done))   # named by whoever reports the failure
            raise
        if log is not None:
            log.entries.extend(done.entries)
        return out

    def undo(self, log: ApplyLog) -> list[str]:
        """Take back what `apply_all` recorded in `log`, newest first: delete what it created,
        put back what it changed. Best effort; returns the objects it could not restore."""
        failed: list[str] = []
        for m, ns, before in reversed(log.entries):
            meta = m.get("metadata") or {}
            try:
                if before is None:
                    self.delete(str(m["apiVersion"]), str(m["kind"]), str(meta["name"]),
                                namespace=ns)
                else:
                    self.replace(before)
            except ClusterError:
                # the original error is the one to report; name what is left behind
                failed.append(describe(str(m.get("kind")), str(meta.get("name")), ns))
        log.entries.clear()
        return failed

    def replace(self, obj: Mapping[str, Any]) -> Manifest:
        """PUT an object back as it was, over the current one: the PUT carries the
        resourceVersion read just before (an API server refuses an update of a custom resource
        without one, 422), so a write in between is a 409, not silently overwritten."""
        rt = self._type_of(obj)
        meta = {k: v for k, v in (obj.get("metadata") or {}).items()
                if k not in ("resourceVersion", "managedFields", "generation")}
        name = str(meta["name"])
        ns = self._ns(rt, meta.get("namespace"))
        current = self.get(rt.api_version, rt.kind, name, namespace=ns)
        meta["resourceVersion"] = str((current.get("metadata") or {}).get("resourceVersion", ""))
        body = {**obj, "metadata": meta}
        return self.api.request("PUT", rt.path(namespace=ns, name=name), body=body,
                                resource=describe(rt.kind, name, ns))

    def patch(self, api_version: str, kind: str, name: str, patch: object, *,
              namespace: str | None = None, patch_type: str = "merge") -> Manifest:
        """`merge` (RFC 7386), `strategic` or `json` (RFC 6902) patch."""
        rt = self.resource_type(api_version, kind)
        ns = self._ns(rt, namespace)
        ctype = {"merge": "application/merge-patch+json",
                 "strategic": "application/strategic-merge-patch+json",
                 "json": "application/json-patch+json"}[patch_type]
        return self.api.request("PATCH", rt.path(namespace=ns, name=name), body=patch,
                                content_type=ctype, resource=describe(kind, name, ns))

    def delete(self, api_version: str, kind: str, name: str, *, namespace: str | None = None,
               missing_ok: bool = True, wait_s: float | None = None,
               propagation: str = "Background") -> bool:
        """Delete one object; True if it existed. With `wait_s`, wait until it is gone.

        Background propagation (the default) removes the object at once and leaves its
        dependents to the garbage collector; `Foreground` keeps the object (finalizer
        `foregroundDeletion`) until the collector has removed them, so on a server without a
        running garbage collector a foreground delete never finishes."""
        rt = self.resource_type(api_version, kind)
        ns = self._ns(rt, namespace)
        try:
            self.api.request("DELETE", rt.path(namespace=ns, name=name),
                             body={"kind": "DeleteOptions", "apiVersion": "v1",
                                   "propagationPolicy": propagation},
                             resource=describe(kind, name, ns))
        except ClusterError as exc:
            if exc.status == 404 and missing_ok:
                return False
            raise
        if wait_s:
            self.wait_for(api_version, kind, name, namespace=ns, what="deleted",
                          ready=lambda o: o is None, timeout_s=wait_s)
        return True

    def delete_all(self, manifests: Iterable[Mapping[str, Any]], *,
                   namespace: str | None = None) -> int:
        """Delete manifests in reverse order (missing ones are fine); returns how many existed."""
        n = 0
        for m in reversed(list(manifests)):
            meta = m.get("metadata") or {}
            n += self.delete(str(m["apiVersion"]), str(m["kind"]), str(meta["name"]),
                             namespace=meta.get("namespace") or namespace)
        return n

    # namespaces --------------------------------------------------------------------------
    def ensure_namespace(self, name: str, *, labels: Mapping[str, str] | None = None,
                         annotations: Mapping[str, str] | None = None) -> Manifest:
        """Create the namespace (with labels and annotations) when it is missing; an existing
        one is left as it is (re-applying it would drop labels this manager set before)."""
        existing = self.find("v1", "Namespace", name)
        if existing is not None:
            return existing
        meta: dict[str, Any] = {"name": name}
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        return self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})

    def label_namespace(self, name: str, *, labels: Mapping[str, str | None] | None = None,
                        annotations: Mapping[str, str | None] | None = None) -> Manifest:
        """Set (value) or remove (None) labels and annotations on a namespace."""
        meta: dict[str, Any] = {}
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        return self.patch("v1", "Namespace", name, {"metadata": meta})

    def restart_rollout(self, name: str, *, namespace: str | None = None,
                        kind: str = "Deployment") -> Manifest:
        """What `kubectl rollout restart` does: bump a pod-template annotation."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        patch = {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": stamp}}}}}
        return self.patch("apps/v1", kind, name, patch, namespace=namespace)


def dump(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
