"""The words a person reads, made from facts and the thresholds in force: a page rendered with
custom thresholds states those, never the defaults."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import SAMPLE_LOGS
from handmade import decaying, judged, three

from analyzer import wording
from analyzer.pipeline import analyse_run
from analyzer.report import render_run_page
from analyzer.runs import find_runs
from analyzer.thresholds import DEFAULT_THRESHOLDS
from analyzer.views import run_view


@pytest.mark.parametrize(
    "decades, words",
    [
        (3, "a thousand times"),
        (2, "a hundred times"),
        (0.3, "twice"),
        (2.5, "316 times"),
        (12, "1e+12 times"),
    ],
)
def test_a_thresholds_ratio_in_words(decades, words):
    assert wording.limit_times(decades) == words


@pytest.mark.parametrize(
    "share, words", [(0.5, "half"), (0.25, "a quarter"), (0.75, "three quarters"), (0.9, "90 %")]
)
def test_a_thresholds_share_in_words(share, words):
    assert wording.share_in_words(share) == words


def test_the_evidence_sentence_states_the_thresholds_in_force():
    default = judged(decaying(4, 10, 3.5))
    assert wording.evidence_in_words(default.findings[0]).endswith(
        "the rule fires at a thousand times less on half the steps."
    )
    custom = replace(DEFAULT_THRESHOLDS, vanishing_depth_decades=2.0, vanishing_step_share=0.25)
    assert wording.evidence_in_words(judged(decaying(4, 10, 3.5), custom).findings[0]).endswith(
        "the rule fires at a hundred times less on a quarter of the steps."
    )
    dead = replace(DEFAULT_THRESHOLDS, dead_zero_share=0.75, dead_step_share=0.9)
    assert wording.evidence_in_words(judged(three(zero=0.8), dead).findings[0]).endswith(
        "the rule fires at three quarters of a layer's entries on 90 % of those steps."
    )


def test_a_page_made_with_custom_thresholds_says_them_in_its_words():
    [run] = find_runs([str(SAMPLE_LOGS / "vanishing_sigmoid_deep")]).runs
    custom = replace(DEFAULT_THRESHOLDS, vanishing_depth_decades=2.5, vanishing_step_share=0.75)
    page = render_run_page(run_view(analyse_run(run, limits=custom)))
    assert "the rule fires at 316 times less on three quarters of the steps." in page
    assert "&lt;= -2.5" in page and "75.0 %" in page  # the thresholds in the numbers, too
    assert "a thousand times less" not in page
    default_page = render_run_page(run_view(analyse_run(run)))
    assert "the rule fires at a thousand times less on half the steps." in default_page


@pytest.mark.parametrize(
    "judged, verdict, evidence, words",
    [
        (
            ["vanishing", "exploding", "dead_units", "unstable", "stalled"],
            "healthy",
            "gradient histograms",
            "",
        ),
        (
            ["vanishing", "exploding"],
            "healthy",
            "weight histograms",
            "no sign of vanishing or exploding gradients; dead units cannot be seen in weights",
        ),
        (
            ["vanishing", "exploding", "stalled"],
            "stalled",
            "weight histograms",
            "dead units cannot be seen in weights",
        ),
        (["exploding"], "insufficient_data", "gradient norm", ""),  # one point: just insufficient data
        (
            ["exploding"],
            "healthy",
            "gradient norm",
            "no sign of exploding gradients; vanishing gradients and dead units cannot be seen in a global "
            "gradient norm",
        ),
    ],
)
def test_what_the_evidence_could_not_judge_in_words_a_person_reads(judged, verdict, evidence, words):
    from analyzer.reasons import judged_words

    assert judged_words(judged, verdict, evidence) == words
