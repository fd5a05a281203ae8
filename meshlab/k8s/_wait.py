"""Polling waits for `Cluster` (mixed in): an object reaching a condition, a rollout, a Job;
a timeout names the object and its last condition, and a wait can be cancelled from a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from meshlab.errors import ClusterError, WaitTimeout
from meshlab.k8s._api import Manifest, ResourceType, describe


def _ref(cluster: Waits, api_version: str, kind: str, name: str,
         namespace: str | None) -> str:
    rt = cluster.resource_type(api_version, kind)
    return describe(kind, name, (namespace or cluster.namespace) if rt.namespaced else None)


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c  # type: ignore[no-any-return]
    return None


def last_condition(obj: Mapping[str, Any] | None) -> str:
    """The most telling status line of an object, for wait errors."""
    if not obj:
        return "object not found"
    status = obj.get("status") or {}
    conds = status.get("conditions") or []
    if conds:
        c = sorted(conds, key=lambda c: str(c.get("lastTransitionTime", "")))[-1]
        msg = f" ({c.get('reason', '')}: {c.get('message', '')})" if c.get("message") else ""
        return f"{c.get('type')}={c.get('status')}{msg}"
    if "phase" in status:
        return f"phase={status['phase']}"
    return "no status yet"


class Waits:
    """The waiting part of `Cluster` (which supplies `namespace`, `find`, `resource_type`)."""

    namespace: str

    def find(self, api_version: str, kind: str, name: str, *,
             namespace: str | None = None) -> Manifest | None:
        raise NotImplementedError

    def resource_type(self, api_version: str, kind: str) -> ResourceType:
        raise NotImplementedError

    def wait_for(self, api_version: str, kind: str, name: str, *,
                 namespace: str | None = None,
                 ready: Callable[[Manifest | None], bool], what: str, timeout_s: float = 120.0,
                 poll_s: float = 0.5, cancel: threading.Event | None = None) -> Manifest | None:
        """Poll an object until `ready(obj)` (obj None = absent); WaitTimeout names the object
        and the last condition seen. Setting `cancel` (from another thread) stops the wait
        with ClusterError reason Cancelled."""
        deadline = time.monotonic() + timeout_s
        obj: Manifest | None = None
        while True:
            obj = self.find(api_version, kind, name, namespace=namespace)
            if ready(obj):
                return obj
            if cancel is not None and cancel.is_set():
                ref = _ref(self, api_version, kind, name, namespace)
                raise ClusterError(f"waiting for {ref} to be {what} was cancelled",
                                   reason="Cancelled", resource=ref)
            if time.monotonic() >= deadline:
                ref = _ref(self, api_version, kind, name, namespace)
                raise WaitTimeout(f"{ref} not {what} after {timeout_s:g} s; last condition: "
                                  f"{last_condition(obj)}", reason="Timeout", resource=ref)
            pause = min(poll_s, max(deadline - time.monotonic(), 0.01))
            if cancel is not None:
                cancel.wait(pause)
            else:
                time.sleep(pause)

    def wait_rollout(self, name: str, *, namespace: str | None = None, kind: str = "Deployment",
                     timeout_s: float = 300.0, poll_s: float = 0.5) -> Manifest:
        """Wait until a Deployment/StatefulSet has observed its spec and all replicas are
        updated and ready."""
        def done(o: Manifest | None) -> bool:
            if not o:
                return False
            spec, st = o.get("spec") or {}, o.get("status") or {}
            want = int(spec.get("replicas", 1))
            return (int(st.get("observedGeneration", 0)) >= int(o["metadata"].get("generation", 0))
                    and int(st.get("updatedReplicas", 0)) >= want
                    and int(st.get("readyReplicas", 0)) >= want
                    and int(st.get("replicas", 0)) == want)
        obj = self.wait_for("apps/v1", kind, name, namespace=namespace, ready=done,
                            what="rolled out", timeout_s=timeout_s, poll_s=poll_s)
        assert obj is not None
        return obj

    def wait_job(self, name: str, *, namespace: str | None = None, timeout_s: float = 600.0,
                 poll_s: float = 1.0, cancel: threading.Event | None = None) -> Manifest:
        """Wait for a Job to complete; a failed Job raises ClusterError with its condition."""
        def done(o: Manifest | None) -> bool:
            if o is None:
                return False
            return any(condition(o, t) and str(condition(o, t).get("status")) == "True"  # type: ignore[union-attr]
                       for t in ("Complete", "Failed"))
        obj = self.wait_for("batch/v1", "Job", name, namespace=namespace, ready=done,
                            what="complete", timeout_s=timeout_s, poll_s=poll_s, cancel=cancel)
        assert obj is not None
        failed = condition(obj, "Failed")
        if failed and str(failed.get("status")) == "True":
            ref = describe("Job", name, namespace or self.namespace)
            raise ClusterError(f"{ref} failed: {failed.get('reason')}: {failed.get('message')}",
                               reason=str(failed.get("reason") or "JobFailed"), resource=ref)
        return obj
