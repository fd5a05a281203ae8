"""Traffic shapes (`loads.shape`): the profile model, the rate over time and the intended send
times each shape implies, the shape echoed on every run's spec, and environments that cannot
execute a shape refusing it up front instead of running a constant rate silently."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest

from meshlab.cli import main
from meshlab.errors import ProfileError
from meshlab.experiment import run_profile
from meshlab.profile import Profile
from meshlab.runners.base import get_runner
from meshlab.shape import RampShape, StepsShape, rate_at_rps, send_times_s


def _profile(shape: dict | None, rate: float = 100.0, **extra: object) -> Profile:
    loads: dict = {"rate_rps": [rate], "connections": [1], "duration_s": 4, "warmup_s": 0}
    if shape is not None:
        loads["shape"] = shape
    return Profile.from_dict({"name": "shape", "target": "http://127.0.0.1:9/",
                              "loads": loads, **extra})


def test_constant_is_the_default_and_every_shape_is_echoed_on_the_spec() -> None:
    (spec,) = _profile(None).expand()
    assert spec.to_dict()["shape"] == {"kind": "constant"}
    (spec,) = _profile({"kind": "steps", "levels": [0.5, 1]}).expand()
    assert spec.to_dict()["shape"] == {"kind": "steps", "levels": [0.5, 1.0]}
    (spec,) = _profile({"kind": "poisson", "seed": 7}).expand()
    assert spec.to_dict()["shape"] == {"kind": "poisson", "seed": 7}


@pytest.mark.parametrize(("shape", "problem"), [
    ({"kind": "zigzag"}, "loads.shape"),
    ({"kind": "ramp", "start_rps": -1}, "loads.shape.ramp.start_rps"),
    ({"kind": "steps", "levels": []}, "loads.shape.steps.levels"),
    ({"kind": "ramp", "oops": 1}, "loads.shape.ramp.oops"),
])
def test_bad_shapes_are_profile_errors(shape: dict, problem: str) -> None:
    with pytest.raises(ProfileError) as err:
        _profile(shape)
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


def test_a_shape_needs_an_open_loop_rate() -> None:
    with pytest.raises(ProfileError, match="needs an open-loop rate"):
        _profile({"kind": "ramp"}, rate=0)


def test_send_times_follow_the_shape_per_second() -> None:
    def per_second(shape: object) -> list[int]:
        c = Counter(int(t) for t in send_times_s(shape, rate_rps=100, duration_s=4))
        return [c[i] for i in range(4)]
    ramp = RampShape(kind="ramp", start_rps=20)
    assert per_second(ramp) == [30, 50, 70, 90]          # the mean rate of each second
    assert rate_at_rps(ramp, 2.0, rate_rps=100, duration_s=4) == 60
    assert per_second(StepsShape(kind="steps", levels=[0.25, 0.5, 1, 0.1])) == [25, 50, 100, 10]
    assert per_second(_profile(None).loads.shape) == [100] * 4


def test_poisson_arrivals_have_the_mean_rate_and_exponential_gaps() -> None:
    shape = _profile({"kind": "poisson", "seed": 3}, rate=200).loads.shape
    times = list(send_times_s(shape, rate_rps=200, duration_s=50))
    assert times == sorted(times) and times == list(send_times_s(shape, rate_rps=200,
                                                                 duration_s=50))
    assert 9_500 < len(times) < 10_500                    # 10,000 expected, sd 100
    gaps = [b - a for a, b in pairwise(times)]
    short = sum(g < 1 / 200 for g in gaps) / len(gaps)    # P(gap < mean) = 1 - 1/e
    assert 0.60 < short < 0.66


@pytest.mark.parametrize("runner", ["wrk", "hey", "ab", "h2load", "fortio"])
def test_tools_without_shapes_refuse_them_naming_runner_and_shape(runner: str) -> None:
    (spec,) = _profile({"kind": "ramp", "start_rps": 10}).expand()
    with pytest.raises(ProfileError) as err:
        get_runner(runner).check(replace(spec, runner=runner))
    assert err.value.problems[0].startswith(
        f"loads.shape: runner {runner} cannot generate a ramp shape"), err.value.problems


def test_k6_generates_ramps_and_steps_but_refuses_poisson() -> None:
    k6 = get_runner("k6")
    for shape in ({"kind": "ramp"}, {"kind": "steps", "levels": [0.5, 1]}):
        (spec,) = _profile(shape).expand()
        k6.check(spec)
    (spec,) = _profile({"kind": "poisson"}).expand()
    with pytest.raises(ProfileError, match="runner k6 cannot generate a poisson shape"):
        k6.check(spec)


def test_an_experiment_refuses_a_shape_its_runner_cannot_generate(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"loads.shape: runner wrk cannot generate a steps"):
        run_profile(_profile({"kind": "steps", "levels": [1]}, runner="wrk"),
                    store=tmp_path / "s.duckdb")


def test_an_experiment_runs_a_ramp_and_shows_it(echo_url: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The shape is on the stored run (spec and dimensions), in `meshlab show` and its JSON,
    and the per-second timeline rises with the ramp."""
    store = tmp_path / "s.duckdb"
    profile = Profile.from_dict({
        "name": "ramp", "target": echo_url, "runner": "native",
        "loads": {"rate_rps": [600], "connections": [2], "duration_s": 3, "warmup_s": 0,
                  "dataplane_warmup_s": 0, "shape": {"kind": "ramp", "start_rps": 60}}})
    outcome = run_profile(profile, store=store)
    (result,) = outcome.results
    assert result.dimensions.shape == "ramp 60->600 req/s"
    assert result.requested_rate_rps == 330
    per_s = [p.requests for p in result.timeseries]
    assert per_s[0] < per_s[1] < per_s[2]
    assert main(["show", result.run_id, "--store", str(store)]) == 0
    assert "shape ramp 60->600 req/s" in capsys.readouterr().out
    assert main(["show", result.run_id, "--store", str(store), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["spec"]["shape"] == {"kind": "ramp", "start_rps": 60.0}
    csv_path = tmp_path / "run.csv"
    assert main(["export", result.run_id, "--format", "csv", "--store", str(store),
                 "--out", str(csv_path)]) == 0
    with csv_path.open(encoding="utf-8") as f:
        (row,) = csv.DictReader(f)
    assert json.loads(row["spec"])["shape"] == {"kind": "ramp", "start_rps": 60.0}
