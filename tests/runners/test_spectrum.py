"""Rebuilding histograms from what tools print: exact pairs, rounded values, sampled quantiles."""

from __future__ import annotations

import numpy as np
import pytest

from meshlab.runners._spectrum import from_quantiles, from_rounded, from_value_counts, per_second


def test_value_counts_are_exact() -> None:
    h = from_value_counts([10, 20, 1000], [5, 0, 2])
    assert h.total == 7 and h.min_us == 10 and h.max_us == 1000
    assert h.mean_us == pytest.approx((10 * 5 + 1000 * 2) / 7)


def test_rounded_values_stay_within_half_a_step() -> None:
    rng = np.random.default_rng(1)
    true_us = rng.lognormal(np.log(150), 0.5, 20_000)
    printed = np.round(true_us / 100.0) * 100.0                 # hey's 0.1 ms
    h = from_rounded(printed, resolution_us=100.0)
    for p in (50, 90, 99, 99.9):
        assert abs(h.percentile_us(p) - np.percentile(true_us, p)) <= 50 + 0.01 * np.percentile(
            true_us, p)
    assert h.min_us > 0                                          # "0.0000" is not 0 us


def test_quantiles_interpolate_and_the_coarse_tail_bounds_the_top() -> None:
    points = [(float(p), 100.0 + p) for p in range(100)] + [(100.0, 50_000.0)]
    h = from_quantiles(points, 10_000)
    assert h.total == 10_000 and h.percentile_us(50) == pytest.approx(150, rel=0.01)
    assert h.percentile_us(99.9) > 40_000                        # naive: straight to the max
    top = [1000.0] * 99 + [50_000.0]                             # -g: the top 1 % were ~1 ms
    bounded = from_quantiles(points, 10_000, top_us=top, top_resolution_us=1000.0)
    assert 199 <= bounded.percentile_us(99.9) <= 1_510
    assert bounded.max_us == 50_000.0


def test_per_second_series() -> None:
    pts = per_second(np.array([0.1, 0.5, 1.2, 2.9]), np.array([100.0, 200.0, 300.0, 400.0]),
                     np.array([False, True, False, False]))
    assert [(p.second, p.requests, p.errors) for p in pts] == [(0, 2, 1), (1, 1, 0), (2, 1, 0)]
