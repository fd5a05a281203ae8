"""Unit parsing: durations and sizes in the forms profiles and the echo server accept."""

from __future__ import annotations

import pytest

from meshlab.units import parse_duration_s, parse_size_bytes, us_from_ms, us_from_s


@pytest.mark.parametrize(("text", "seconds"), [
    ("10ms", 0.01), ("1.5s", 1.5), ("250us", 250e-6), ("2m", 120.0), ("3", 3.0), (4, 4.0),
    ("1h", 3600.0), ("5ns", 5e-9),
])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "size"), [
    ("1024", 1024), ("4KiB", 4096), ("1k", 1000), ("2MB", 2_000_000), (7, 7), ("1Mi", 1048576),
])
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size_bytes(text) == size


@pytest.mark.parametrize("bad", ["soon", "-1s", "1 parsec", ""])
def test_bad_durations_say_what_is_accepted(bad: str) -> None:
    with pytest.raises(ValueError, match="e.g."):
        parse_duration_s(bad)


def test_conversions() -> None:
    assert us_from_s(1.5) == 1_500_000
    assert us_from_ms(2) == 2000
