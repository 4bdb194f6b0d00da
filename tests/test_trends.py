"""Fits over steps and across depth recover known rates, with intervals that contain them."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.trends import fit_depth, theil_sen


def test_theil_sen_recovers_decades_per_1k_steps_despite_outliers():
    rng = np.random.default_rng(1)
    steps = np.arange(0, 5000, 50)
    log_rms = -2 - 0.4 * steps / 1000 + rng.normal(0, 0.05, len(steps))
    log_rms[::10] += 3  # spikes that would drag a least-squares fit
    trend = theil_sen(steps, log_rms)
    assert trend.decades_per_1k_steps == pytest.approx(-0.4, abs=0.02)
    assert trend.ci_low < -0.4 < trend.ci_high
    assert trend.points == len(steps)


def test_theil_sen_needs_three_finite_points():
    assert theil_sen(np.array([0, 1, 2]), np.array([1.0, np.nan, 2.0])) is None


def test_depth_fit_slope_interval_and_r2():
    depth = np.arange(8)
    fit = fit_depth(100, depth, -0.5 * (7 - depth) - 1)
    assert fit.decades_per_layer == pytest.approx(0.5)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.ci_low == pytest.approx(0.5) and fit.ci_high == pytest.approx(0.5)
