"""How an experiment ended: `ExperimentStatus` and the `ExperimentOutcome` that `run_profile`
returns (experiment id, every run result, status)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshlab.results import RunResult, RunStatus
from meshlab.slo import breaches

if TYPE_CHECKING:
    import pandas as pd


class ExperimentStatus(enum.StrEnum):
    """How an experiment ended. COMPLETED means every run was attempted: some may have FAILED."""

    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"        # cancelled: the run in flight is stored as an aborted run
    FAILED = "failed"          # stopped after a broken run (on_failure: stop) or meshlab failed


@dataclass(frozen=True, slots=True, repr=False)
class ExperimentOutcome:
    """What `run_profile` returns: the experiment id, every run result (stored) and the status."""

    experiment_id: str
    results: list[RunResult]
    status: ExperimentStatus
    profile: str = ""
    reason: str = ""               # why the experiment stopped early ("" when it did not)
    seed: int | None = None        # seed of the interleaved run order (Profile.seed)

    @property
    def ok(self) -> bool:
        """True when the experiment completed and every run completed and held its SLO
        (what `meshlab run` exits 0 for)."""
        return self.status == ExperimentStatus.COMPLETED and all(
            r.status == RunStatus.COMPLETED and not breaches(r) for r in self.results)

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.results]

    def summaries(self) -> list[dict[str, Any]]:
        """`RunResult.summary()` of every run, in run order."""
        return [r.summary() for r in self.results]

    def to_frame(self) -> pd.DataFrame:
        """The summaries as a DataFrame, one row per run, with mesh and repeat columns."""
        import pandas as pd

        rows = [{**r.summary(), "mesh": r.dimensions.mesh, "repeat": r.dimensions.repeat}
                for r in self.results]
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        # A notebook shows this for `outcome`: the full results would print every histogram.
        counts: dict[str, int] = {}
        for r in self.results:
            counts[str(r.status)] = counts.get(str(r.status), 0) + 1
        runs = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        reason = f", reason={self.reason!r}" if self.reason else ""
        return (f"ExperimentOutcome(experiment_id={self.experiment_id!r}, "
                f"profile={self.profile!r}, status={str(self.status)!r}, "
                f"runs={len(self.results)} [{runs}]{reason})")
