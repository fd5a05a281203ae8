"""Traffic shapes (`loads.shape`): the profile model, the rate over time and the intended send
times each shape implies, the shape echoed on every run's spec, and environments that cannot
execute a shape refusing it up front instead of running a constant rate silently."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from meshlab.errors import ProfileError
from meshlab.experiment import run_profile
from meshlab.profile import Profile
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


def test_runners_that_cannot_execute_a_shape_refuse_it(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"loads.shape: kind 'ramp' is not executed by "
                                           r"runner 'native' yet"):
        run_profile(_profile({"kind": "ramp", "start_rps": 10}), store=tmp_path / "s.duckdb")
