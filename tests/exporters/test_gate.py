"""The statistical validation gate: Clopper–Pearson bounds and the three verdicts."""

from __future__ import annotations

import pytest
from scipy import stats

from compress.exporters.gate import images_needed, judge, rate_bounds


@pytest.mark.parametrize("k,n", [(0, 40), (1, 40), (2, 360), (17, 1000), (40, 40), (500, 1000)])
def test_bounds_equal_scipys_beta_quantiles(k, n):
    lower, upper = rate_bounds(k, n, 0.05)
    want_lo = 0.0 if k == 0 else stats.beta.ppf(0.05, k, n - k + 1)
    want_hi = 1.0 if k == n else stats.beta.ppf(0.95, k + 1, n - k)
    assert lower == pytest.approx(want_lo, abs=1e-9) and upper == pytest.approx(want_hi, abs=1e-9)


def test_images_needed_is_the_rule_of_three():
    assert images_needed(0.01) == 299  # 3/N ≤ 1 point from about 300 images
    upper = rate_bounds(0, 299)[1]
    assert upper <= 0.01 < rate_bounds(0, 298)[1]


INT8 = {"min_agreement": 0.95, "max_drop": 0.01, "judged_by": "accuracy"}


def test_forty_images_cannot_judge_a_one_point_drop():
    """The report's case: 40 images, 82.5 % → 77.5 % (two images) is a coin toss."""
    v = judge(images=40, disagreements=2, lost=2, gained=0, **INT8)
    assert v.status == "inconclusive" and "too few to detect a 1-point drop" in v.doubts[0]
    assert "--set validate_images" in v.doubts[0]


def test_a_large_drop_fails_even_on_few_images():
    v = judge(images=40, disagreements=20, lost=20, gained=0, **INT8)
    assert v.status == "failed" and "95 % confidence" in v.failures[0]


def test_a_drop_beyond_tolerance_but_not_significant_is_inconclusive():
    v = judge(images=1000, disagreements=15, lost=15, gained=0, **INT8)
    assert v.status == "inconclusive" and "not significant" in v.doubts[0]
    v = judge(images=1000, disagreements=40, lost=40, gained=0, **INT8)
    assert v.status == "failed"


def test_within_tolerance_on_enough_images_passes():
    v = judge(images=1000, disagreements=8, lost=5, gained=3, **INT8)
    assert v.passed and v.bounds["drop"][0] < 0.002 < v.bounds["drop"][1]


def test_bounded_logits_pass_on_few_images_and_fail_only_when_significant():
    fp32 = {"min_agreement": 0.999, "max_drop": 0.001, "judged_by": "logits"}
    assert judge(images=360, disagreements=1, lost=1, gained=0, **fp32).passed
    assert judge(images=360, disagreements=0, lost=0, gained=0, **fp32).passed
    assert judge(images=360, disagreements=30, lost=30, gained=0, **fp32).status == "failed"
    broken = judge(images=360, disagreements=0, lost=0, gained=0, **fp32,
                   deterministic_failures=["max |Δlogit| 1e-2 > 1e-4"])  # fmt: skip
    assert broken.status == "failed" and broken.failures == ["max |Δlogit| 1e-2 > 1e-4"]
