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


def test_theil_sen_matches_scipy_including_missing_points_and_ties():
    from scipy import stats

    from analyzer.trends import theil_sen_rows

    rng = np.random.default_rng(3)
    steps = np.arange(0, 2500, 25)  # 100 points: fitted as they are
    rows = rng.normal(size=(6, steps.size)).cumsum(axis=1) * 0.1
    rows[1, ::7] = np.nan
    rows[2, :] = np.round(rows[2, :], 1)  # many ties in y
    rows[3, 5:] = np.nan
    for row, trend in zip(rows, theil_sen_rows(steps, rows)):
        ok = np.isfinite(row)
        ref = stats.theilslopes(row[ok], steps[ok] / 1000.0, alpha=0.95)
        assert trend.decades_per_1k_steps == pytest.approx(ref.slope, rel=1e-12, abs=1e-12)
        assert trend.intercept == pytest.approx(ref.intercept, rel=1e-12, abs=1e-12)
        assert (trend.ci_low, trend.ci_high) == pytest.approx((ref.low_slope, ref.high_slope), rel=1e-12)


def test_depth_fits_match_scipy_linregress():
    from scipy import stats

    from analyzer.trends import fit_depth_columns

    rng = np.random.default_rng(4)
    values = rng.normal(size=(9, 40)) + np.arange(9)[:, None] * 0.3
    values[2, 5] = np.nan
    for t, fit in enumerate(fit_depth_columns(np.arange(40), np.arange(9), values)):
        ok = np.isfinite(values[:, t])
        ref = stats.linregress(np.arange(9)[ok], values[ok, t])
        half = stats.t.ppf(0.975, ok.sum() - 2) * ref.stderr
        assert fit.decades_per_layer == pytest.approx(ref.slope, rel=1e-10)
        assert fit.r2 == pytest.approx(ref.rvalue**2, rel=1e-10)
        assert fit.ci_high - fit.decades_per_layer == pytest.approx(half, rel=1e-8)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 30, 300])
def test_student_t_quantile(df):
    from scipy import stats

    from analyzer.trends import student_t_quantile

    assert student_t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-9)
    assert student_t_quantile(0.9, df) == pytest.approx(stats.t.ppf(0.9, df), rel=1e-9)


def test_long_runs_are_fitted_on_bin_medians_close_to_the_full_fit():
    from scipy import stats

    rng = np.random.default_rng(5)
    steps = np.arange(0, 100_000, 50)  # 2,000 logged steps
    y = -1 - 0.02 * steps / 1000 + rng.normal(0, 0.3, steps.size)
    trend = theil_sen(steps, y)
    full = stats.theilslopes(y, steps / 1000.0)
    assert trend.points == 100
    assert trend.ci_low < full.slope < trend.ci_high
    assert trend.decades_per_1k_steps == pytest.approx(-0.02, abs=0.003)
