"""A profile's `topology:` mapping for `environment: kubernetes`, validated (pydantic,
extra="forbid"): which cluster, where the benchmark server runs and how the in-cluster fortio
load is shaped. The defaults here, the pinned fortio image included, are the only ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meshlab.errors import ProfileError

# fortio's releases are tagged; `latest` would make two runs a week apart differ silently
FORTIO_IMAGE = "fortio/fortio:1.75.3"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"


class KubernetesTopology(BaseModel):
    """Where and how a profile runs on a cluster."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    context: str | None = Field(default=None, description="kubeconfig context (default: current)")
    kubeconfig: str | None = Field(default=None, description="kubeconfig file (default: "
                                                             "$KUBECONFIG or ~/.kube/config)")
    in_cluster: bool = Field(default=False, description="use the pod's service account")
    namespace: str = Field(default="meshlab-bench", max_length=63, pattern=_DNS_LABEL)
    name: str = Field(default="meshlab-server", max_length=50, pattern=_DNS_LABEL,
                      description="the benchmark server's Deployment and Service")
    replicas: int = Field(default=1, ge=1, le=100)
    image: str = Field(default=FORTIO_IMAGE, min_length=1,
                       description="fortio image of the server and the load pods (pin a tag)")
    cpu: str = Field(default="1", pattern=_QUANTITY, description="server container CPU")
    memory: str = Field(default="256Mi", pattern=_QUANTITY)
    load_parallelism: int = Field(default=1, ge=1, le=100,
                                  description="fortio pods sharing the rate and connections")
    load_cpu: str = Field(default="1", pattern=_QUANTITY)
    load_memory: str = Field(default="256Mi", pattern=_QUANTITY)
    load_node: str | None = Field(default=None, description="pin load pods to this node")
    prometheus_url: str | None = Field(default=None, description="telemetry source")
    warmup_trim_s: float = Field(default=0.0, ge=0, description=(
        "telemetry: seconds dropped at the start of the measured window (the warm-up Job "
        "runs before it, but Prometheus rate windows still reach back)"))
    cooldown_trim_s: float = Field(default=0.0, ge=0)
    job_timeout_s: float | None = Field(default=None, gt=0, description=(
        "wait at most this long for a load Job (default: 3 x its duration + 120 s)"))
    keep: bool = Field(default=False, description="leave the workload in place at close")
    service: str | None = Field(default=None, max_length=63, pattern=_DNS_LABEL, description=(
        "benchmark this existing Service of `namespace` (and the Deployments behind it) "
        "instead of deploying meshlab's fortio server"))
    service_port: int | None = Field(default=None, ge=1, le=65535,
                                     description="the Service port (default: its first)")
    service_path: str = Field(default="/", description="request path on the Service")
    service_mode: Literal["as_is", "toggle"] = Field(default="as_is", description=(
        "as_is: measure with whatever mesh the workloads run in; toggle: put them in each "
        "mesh of the matrix in turn (pod-template injection, rollout) and restore them at "
        "close"))
    waypoint: str | None = Field(default=None, max_length=63, pattern=_DNS_LABEL, description=(
        "ambient data planes: the waypoint Gateway created for L7 policies"))
    mesh_versions: dict[str, str] = Field(default_factory=dict, description=(
        "pin a mesh's version ({MESH: VERSION}); a run fails when the cluster's differs"))

    @classmethod
    def from_profile(cls, topology: Any) -> KubernetesTopology:
        """Validate a profile's `topology` value; every problem in one ProfileError."""
        if topology is None:
            return cls()
        if isinstance(topology, cls):
            return topology
        if not isinstance(topology, Mapping):
            raise ProfileError(f"topology: environment kubernetes takes a mapping of "
                               f"{', '.join(cls.model_fields)}; got {type(topology).__name__}")
        try:
            return cls.model_validate(dict(topology))
        except ValidationError as exc:
            from meshlab.profile import validation_problems

            raise ProfileError([f"topology.{p}" for p in validation_problems(exc)]) from None
