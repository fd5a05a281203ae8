"""A Kubernetes API stand-in for tests: kmock's `KubernetesEmulator` (by the author of kopf) over
real HTTP, extended where it is too simple for the official client and for meshlab's flows.

Kept from kmock: the aiohttp server, discovery (/api, /apis, group versions, bundled built-in
resources), /version, `Status` error bodies, the `objects` store with per-object history.
Added here (kmock has none of it): a request parser that also understands `/api/v1/namespaces`;
label and field selectors; `resourceVersion`, `uid`, `generation`, `creationTimestamp`; 409 on
create of an existing object and on a stale resourceVersion; PUT; merge, strategic-merge
(approximated: lists merged by name/port) and JSON patches; server-side apply with field
ownership, conflicts and `managedFields`; 404 for objects in missing namespaces; namespace and
owner-reference cascading deletion; CRDs registered for discovery and custom resources validated
against their schema (422 Invalid, strict field validation); pod logs; 403 for forbidden
namespaces, RBAC refusals per verb and resource, 422 for a PUT of a custom resource without
resourceVersion, foreground deletes kept with their finalizer when there is no garbage
collector (`standin_rules.py`), CEL rules of CRDs evaluated (`crd_cel.py`); and toy
controllers: Deployments and Jobs get pods, mesh injectors add sidecars, fortio load pods
log a fortio JSON result sized by their own args (`standin_fortio.py`); test
hooks: a callback per created Job, and kinds whose writes fail (rollback tests).
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import importlib.resources
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp.web
import attrs
import kmock
from crd_schema import CrdSet
from standin_controllers import ToyControllers, now
from standin_fortio import fortio_log
from standin_logic import (
    Ownership,
    json_patch,
    match_fields,
    match_labels,
    merge_patch,
    strategic_merge,
)
from standin_rules import (
    Deny,
    forbidden_message,
    mark_foreground,
    missing_resource_version,
    propagation_of,
    verb_of,
)

Obj = dict[str, Any]
LogSource = Callable[[Obj, str | None], str]

def _status(code: int, reason: str, message: str, **details: Any) -> aiohttp.web.Response:
    return aiohttp.web.json_response(
        {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
         "code": code, "reason": reason, "message": message, "details": details}, status=code)


@attrs.define(kw_only=True)
class ApiStandIn(ToyControllers, kmock.KubernetesEmulator):
    """The stand-in handler; run it with `serve()`."""

    crds: CrdSet = attrs.field(factory=CrdSet)
    forbidden_namespaces: set[str] = attrs.field(factory=set)
    installed_meshes: set[str] = attrs.field(factory=set)
    log_source: LogSource | None = None      # default: fortio's output for load pods
    fortio_codes: dict[str, float] | None = None   # share of calls per return code
    job_fails: bool = False
    job_hangs: bool = False                         # Jobs never finish
    on_job: Callable[[Obj], None] | None = None     # sees each Job as it is created
    fail_kinds: dict[str, int] = attrs.field(factory=dict)   # kind -> HTTP status on write
    deny: list[Deny] = attrs.field(factory=list)              # RBAC refusals (403)
    garbage_collector: bool = True   # False: foreground deletes keep the object (finalizer)
    git_version: str = "v1.31.4"
    calls: list[tuple[str, str, str]] = attrs.field(factory=list)
    _owners: dict[tuple[str, str | None, str], Ownership] = attrs.field(factory=dict)
    _rv: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000))
    _kinds: dict[tuple[str, str, str], tuple[str, bool]] = attrs.field(factory=dict)
    _mutex: threading.RLock = attrs.field(factory=threading.RLock)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # kmock's load_bundled() uses a deprecated importlib call; read the same file directly
        bundled = importlib.resources.files("kmock._internal") / "resources.json.gz"
        self.resources.load_data(gzip.decompress(bundled.read_bytes()))
        for res in self.resources:
            info = self.resources[res]
            self._kinds[(res.group or "", res.version or "", res.plural or "")] = (
                str(info.kind), bool(info.namespaced))

    # discovery -------------------------------------------------------------------------
    async def _serve_server_version(self, request: kmock.Request) -> Any:
        major, minor = self.git_version.lstrip("v").split(".")[:2]
        return {"major": major, "minor": minor, "gitVersion": self.git_version,
                "platform": "linux/amd64", "goVersion": "go1.23.4", "compiler": "gc"}

    def register_crd(self, crd: Mapping[str, Any]) -> None:
        """Serve a CRD's kinds (discovery) and validate its custom resources."""
        spec = crd["spec"]
        if (spec["group"], spec["names"]["kind"]) not in self.crds.crds:
            self.crds.add(crd)
        for v in spec["versions"]:
            if not v.get("served", True):
                continue
            key = f"{spec['group']}/{v['name']}/{spec['names']['plural']}"
            namespaced = spec.get("scope", "Namespaced") == "Namespaced"
            self.resources[key] = kmock.ResourceInfo(
                kind=spec["names"]["kind"], namespaced=namespaced,
                singular=spec["names"].get("singular"),
                verbs={"get", "list", "watch", "create", "update", "patch", "delete"})
            self._kinds[(spec["group"], v["name"], spec["names"]["plural"])] = (
                spec["names"]["kind"], namespaced)

    def kind_of(self, group: str, version: str, plural: str) -> tuple[str, bool] | None:
        return self._kinds.get((group, version, plural))

    def serve_crds(self, crds: CrdSet) -> None:
        """Serve every CRD of a (shared, pre-compiled) set."""
        self.crds = crds
        for crd in crds.crds.values():
            self.register_crd(crd)

    # storage helpers -------------------------------------------------------------------
    def _key(self, group: str, version: str, plural: str) -> kmock.resource:
        return kmock.resource(group, version, plural)

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> Obj | None:
        group, _, version = api_version.rpartition("/")
        key = (self._key(group, version, plural), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def all(self, group: str, version: str, plural: str,
            namespace: str | None = None) -> list[Obj]:
        res = self._key(group, version, plural)
        return [copy.deepcopy(o.raw) for (r, ns, _), o in self.objects.items()
                if r == res and not o.deleted and (namespace is None or ns == namespace)]

    def put(self, group: str, version: str, plural: str, obj: Obj) -> Obj:
        """Store an object as is (tests seed nodes, control planes ... with it)."""
        kind, namespaced = self._kinds[(group, version, plural)]
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._rv))
        obj.setdefault("apiVersion", f"{group}/{version}" if group else version)
        obj.setdefault("kind", kind)
        key = (self._key(group, version, plural), meta.get("namespace") if namespaced else None,
               meta["name"])
        if key in self.objects:
            self.objects[key].history.append(obj)
        else:
            self.objects[key] = obj
        return obj

    def remove(self, group: str, version: str, plural: str, namespace: str | None,
               name: str) -> Obj | None:
        key = (self._key(group, version, plural), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        obj = copy.deepcopy(self.objects[key].raw)
        self.objects[key].delete()
        self._owners.pop((f"{group}/{version}/{plural}", namespace, name), None)
        uid = obj["metadata"].get("uid")
        for (r, ns, n), o in list(self.objects.items()):   # owner-reference cascade
            if not o.deleted and any(ref.get("uid") == uid
                                     for ref in o.raw["metadata"].get("ownerReferences", [])):
                self.remove(r.group or "", r.version or "", r.plural or "", ns, n)
        if (group, plural) == ("", "namespaces"):
            for (r, ns, n), o in list(self.objects.items()):
                if ns == name and not o.deleted:
                    self.remove(r.group or "", r.version or "", r.plural or "", ns, n)
        return obj

    # HTTP ------------------------------------------------------------------------------
    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        parts = [p for p in raw.path.split("/") if p]
        if parts and parts[0] == "apis" and len(parts) <= 3 and raw.method == "GET":
            return self._discover(parts[1:])    # kmock's group discovery misses CRD groups
        route = _route(raw.path)
        if route is None or route.get("plural") is None or raw.query.get("watch") == "true":
            return await super().__call__(raw)    # discovery, /version, watch: kmock
        body = await raw.read()
        self.calls.append((raw.method, raw.path, raw.query_string))
        with self._mutex:
            try:
                return self._serve(raw, route, body)
            except _Fail as f:
                return f.response

    def _discover(self, parts: list[str]) -> aiohttp.web.StreamResponse:
        groups: dict[str, list[str]] = {}
        for g, v, _ in self._kinds:
            if g and v not in groups.setdefault(g, []):
                groups[g].append(v)

        def group_doc(g: str) -> dict[str, Any]:
            vs = sorted(groups[g], key=lambda v: (not v.startswith("v1"), v))
            return {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}
                                            for v in vs],
                    "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
        if not parts:
            return aiohttp.web.json_response({"kind": "APIGroupList", "apiVersion": "v1",
                                              "groups": [group_doc(g) for g in sorted(groups)]})
        if parts[0] not in groups or (len(parts) == 2 and parts[1] not in groups[parts[0]]):
            return _status(404, "NotFound", "the server could not find the requested resource")
        if len(parts) == 1:
            return aiohttp.web.json_response({"kind": "APIGroup", "apiVersion": "v1",
                                              **group_doc(parts[0])})
        g, v = parts
        res = [{"name": p, "singularName": "", "namespaced": ns, "kind": k,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
               for (gg, vv, p), (k, ns) in sorted(self._kinds.items()) if (gg, vv) == (g, v)]
        return aiohttp.web.json_response({"kind": "APIResourceList", "apiVersion": "v1",
                                          "groupVersion": f"{g}/{v}", "resources": res})

    def _serve(self, raw: aiohttp.web.BaseRequest, r: dict[str, Any],
               body: bytes) -> aiohttp.web.StreamResponse:
        group, version, plural = r["group"], r["version"], r["plural"]
        ns, name, sub = r.get("namespace"), r.get("name"), r.get("subresource")
        known = self.kind_of(group, version, plural)
        if known is None:
            raise _Fail(_status(404, "NotFound", "the server could not find the requested "
                                                 "resource"))
        kind, namespaced = known
        verb = verb_of(raw.method, name)
        if ns in self.forbidden_namespaces or (plural == "namespaces" and
                                               name in self.forbidden_namespaces):
            raise _Fail(_status(403, "Forbidden", forbidden_message(verb, plural, group,
                                                                    ns or name),
                                kind=plural, name=name or ""))
        if not namespaced:
            ns = None
        if any(d.matches(verb, plural, ns) for d in self.deny):
            raise _Fail(_status(403, "Forbidden", forbidden_message(verb, plural, group, ns),
                                kind=plural, name=name or ""))
        doc: Any = json.loads(body) if body else None
        if sub == "log":
            pod = self._must(group, version, plural, ns, name, kind)
            container = raw.query.get("container")
            text = (self.log_source(pod, container) if self.log_source else
                    fortio_log(pod, container, self.fortio_codes))
            return aiohttp.web.Response(text=text, content_type="text/plain")
        if raw.method == "GET" and name:
            return aiohttp.web.json_response(self._must(group, version, plural, ns, name, kind))
        if raw.method == "GET":
            items = [o for o in self.all(group, version, plural, ns)
                     if match_labels(o["metadata"].get("labels") or {},
                                     raw.query.get("labelSelector"))
                     and match_fields(o, raw.query.get("fieldSelector"))]
            return aiohttp.web.json_response({
                "apiVersion": f"{group}/{version}" if group else version, "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(next(self._rv))}, "items": items})
        manager = raw.query.get("fieldManager") or "unknown"
        dry = raw.query.get("dryRun") == "All"
        if raw.method == "DELETE" and name:
            obj = self._must(group, version, plural, ns, name, kind)
            if not self.garbage_collector and propagation_of(doc, raw.query) == "Foreground":
                return aiohttp.web.json_response(self.put(group, version, plural,
                                                          mark_foreground(obj)))
            gone = self.remove(group, version, plural, ns, name)
            return aiohttp.web.json_response(gone)
        if raw.method == "POST":
            obj = dict(doc or {})
            name = (obj.get("metadata") or {}).get("name")
            if self.get(_av(group, version), plural, ns, str(name)) is not None:
                raise _Fail(_status(409, "AlreadyExists", f'{plural} "{name}" already exists',
                                    name=name, kind=plural))
            return aiohttp.web.json_response(
                self._write(group, version, plural, kind, ns, None, obj, manager, dry), status=201)
        if raw.method in ("PUT", "PATCH") and name:
            before = self.get(_av(group, version), plural, ns, name)
            ctype = raw.headers.get("Content-Type", "application/json").split(";")[0]
            if ctype == "application/apply-patch+yaml":
                return self._apply(group, version, plural, kind, ns, name, before, doc or {},
                                   manager, raw.query.get("force") == "true", dry)
            if before is None:
                raise _Fail(_status(404, "NotFound", f'{plural} "{name}" not found',
                                    name=name, kind=plural))
            if raw.method == "PUT":
                if self.crds.knows(_av(group, version), kind) and \
                        (msg := missing_resource_version(doc)):
                    raise _Fail(_status(422, "Invalid", f'{kind}.{group} "{name}" is invalid: '
                                        f'{msg}', name=name, kind=kind,
                                        causes=[{"message": msg}]))
                after = dict(doc or {})
            elif ctype == "application/json-patch+json":
                after = json_patch(before, doc or [])
            elif ctype == "application/strategic-merge-patch+json":
                after = strategic_merge(before, doc or {})
            else:
                after = merge_patch(before, doc or {})
            if sub == "status":
                after = {**before, "status": after.get("status")}
            return aiohttp.web.json_response(
                self._write(group, version, plural, kind, ns, before, after, manager, dry))
        raise _Fail(_status(405, "MethodNotAllowed", f"{raw.method} is not supported here"))

    def _must(self, group: str, version: str, plural: str, ns: str | None, name: str | None,
              kind: str) -> Obj:
        obj = self.get(_av(group, version), plural, ns, str(name))
        if obj is None:
            raise _Fail(_status(404, "NotFound", f'{plural} "{name}" not found', name=name,
                                kind=plural))
        return obj

    def _apply(self, group: str, version: str, plural: str, kind: str, ns: str | None,
               name: str, before: Obj | None, applied: Obj, manager: str, force: bool,
               dry: bool) -> aiohttp.web.StreamResponse:
        if manager == "unknown":
            raise _Fail(_status(400, "BadRequest", "PATCH, with apply-patch+yaml, requires a "
                                                   "fieldManager"))
        owners = self._owners.setdefault((f"{group}/{version}/{plural}", ns, name), Ownership())
        snapshot = copy.deepcopy(owners.owners)
        merged, conflicts = owners.apply(before, applied, manager, force=force)
        if conflicts:
            raise _Fail(_status(409, "Conflict", f"Apply failed with {len(conflicts)} conflict"
                                                 f"{'s' if len(conflicts) > 1 else ''}: "
                                                 + "; ".join(conflicts), kind=plural, name=name))
        try:
            out = self._write(group, version, plural, kind, ns, before, merged, None, dry,
                              check_rv=applied)
        except _Fail:
            owners.owners = snapshot
            raise
        if dry:
            owners.owners = snapshot
        return aiohttp.web.json_response(out, status=200 if before else 201)

    def _write(self, group: str, version: str, plural: str, kind: str, ns: str | None,
               before: Obj | None, after: Obj, manager: str | None, dry: bool, *,
               check_rv: Mapping[str, Any] | None = None) -> Obj:
        meta = after.setdefault("metadata", {})
        name = meta.get("name")
        sent_rv = ((check_rv or after).get("metadata") or {}).get("resourceVersion")
        if before is not None and sent_rv and sent_rv != before["metadata"]["resourceVersion"]:
            raise _Fail(_status(409, "Conflict", f'Operation cannot be fulfilled on {plural} '
                                f'"{name}": the object has been modified; please apply your '
                                f'changes to the latest version and try again', name=name))
        if ns is not None:
            if self.get("v1", "namespaces", None, ns) is None:
                raise _Fail(_status(404, "NotFound", f'namespaces "{ns}" not found',
                                    name=ns, kind="namespaces"))
            meta["namespace"] = ns
        after.setdefault("apiVersion", _av(group, version))
        after.setdefault("kind", kind)
        if kind in self.fail_kinds:
            code = self.fail_kinds[kind]
            raise _Fail(_status(code, "InternalError", f'Internal error occurred: {kind} "{name}"'
                                f': etcdserver: request timed out', name=name, kind=kind))
        if self.crds.knows(_av(group, version), kind):
            problems = self.crds.errors(after)
            if problems:
                raise _Fail(_status(422, "Invalid", f'{kind}.{group} "{name}" is invalid: '
                                    + "; ".join(problems), name=name, kind=kind,
                                    causes=[{"message": p} for p in problems]))
        if kind == "CustomResourceDefinition":
            self.register_crd(after)
        if before is None:
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        else:
            for k in ("uid", "creationTimestamp"):
                meta[k] = before["metadata"][k]
            gen = int(before["metadata"].get("generation", 1))
            changed = {k: v for k, v in after.items() if k not in ("metadata", "status")} != \
                {k: v for k, v in before.items() if k not in ("metadata", "status")}
            meta["generation"] = gen + 1 if changed else gen
        key = (f"{group}/{version}/{plural}", ns, str(name))
        owners = self._owners.setdefault(key, Ownership())
        if manager is not None:
            owners.update(before, after, manager)
        meta["managedFields"] = owners.managed_fields(_av(group, version), now())
        if dry:
            meta["resourceVersion"] = (before or {}).get("metadata", {}).get("resourceVersion", "")
            return after
        stored = self.put(group, version, plural, after)
        self._reconcile(kind, stored)
        return self.get(_av(group, version), plural, ns, str(name)) or stored

    # test helpers ----------------------------------------------------------------------
    def seed(self, obj: Obj) -> Obj:
        """Store an object directly (nodes, control-plane deployments, pods with restarts)."""
        group, _, version = obj["apiVersion"].rpartition("/")
        plural = next(p for (g, v, p), (k, _) in self._kinds.items()
                      if g == group and v == version and k == obj["kind"])
        with self._mutex:
            return self.put(group, version, plural, copy.deepcopy(obj))


class _Fail(Exception):
    def __init__(self, response: aiohttp.web.Response) -> None:
        self.response = response


def _av(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _route(path: str) -> dict[str, Any] | None:
    """/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]] and /apis/GROUP/VERSION/..."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    out: dict[str, Any] = {"group": group, "version": version, "plural": None}
    if len(rest) >= 3 and rest[0] == "namespaces":
        out["namespace"], rest = rest[1], rest[2:]
    if rest:
        out["plural"] = rest[0]
    if len(rest) >= 2:
        out["name"] = rest[1]
    if len(rest) >= 3:
        out["subresource"] = "/".join(rest[2:])
    return out


@contextmanager
def serve(handler: ApiStandIn | None = None) -> Iterator[tuple[ApiStandIn, str]]:
    """Run a stand-in on 127.0.0.1:<free port> in a background thread; yields (handler, url)."""
    ready = threading.Event()
    stop: dict[str, Any] = {}
    box: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        async def main() -> None:
            h = handler if handler is not None else ApiStandIn()
            async with h, kmock.Server(h) as srv:
                box["handler"], box["url"] = h, str(srv.url).rstrip("/")
                stop["event"] = asyncio.Event()
                stop["loop"] = loop
                ready.set()
                await stop["event"].wait()

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # surface start-up failures to the test thread
            box["error"] = exc
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="k8s-standin", daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the API stand-in did not start within 15 s")
    if "error" in box:
        raise RuntimeError(f"the API stand-in failed to start: {box['error']!r}")
    try:
        yield box["handler"], box["url"]
    finally:
        stop["loop"].call_soon_threadsafe(stop["event"].set)
        thread.join(10)
