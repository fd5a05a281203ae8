"""The example profiles shipped in data/profiles load, and expand to the runs they describe."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshlab.profile import Profile

PROFILES = sorted((Path(__file__).resolve().parent.parent / "data" / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_example_profile_loads(path: Path) -> None:
    profile = Profile.load(path)
    assert profile.name == path.stem and profile.expand()


def test_the_ramp_example_is_a_ramp() -> None:
    (profile,) = (Profile.load(p) for p in PROFILES if p.stem == "ramp")
    specs = profile.expand()
    assert {s.shape.kind for s in specs} == {"ramp"} and all(s.open_loop for s in specs)
