"""The bank's model metrics against values worked out by hand."""

import math

import numpy as np
import pytest

from training import metrics


def test_ks_is_the_largest_gap_between_class_cdfs():
    # Sorted: 0.1(neg) 0.35(pos) 0.4(neg) 0.8(pos): CDF gaps 0.5, 0, 0.5, 0.
    assert metrics.ks_statistic([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5)
    assert metrics.ks_statistic([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)


def test_ks_treats_ties_as_one_threshold():
    # All scores equal: no threshold separates anything.
    assert metrics.ks_statistic([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0)


def test_brier_is_mean_squared_error():
    assert metrics.brier([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)


def test_psi_by_hand():
    expected = np.arange(100)
    # Reference median 49.5 splits 50/50; the new sample has 75 below and 25 above.
    actual = np.r_[np.zeros(75), np.full(25, 99.0)]
    by_hand = 0.25 * math.log(0.75 / 0.5) + (-0.25) * math.log(0.25 / 0.5)
    assert metrics.psi(expected, actual, bins=2) == pytest.approx(by_hand)
    assert metrics.psi(expected, expected) == pytest.approx(0.0)


def test_lift_and_gain_by_decile():
    y = [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    score = np.arange(10, 0, -1)  # the first customers score highest
    table = metrics.lift_table(y, score, bins=5)
    assert table["customers"].tolist() == [2] * 5
    assert table["lift"].iloc[0] == pytest.approx(1.0 / 0.3)
    assert table["cum_gain"].tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0])
    assert metrics.top_decile_lift(y, score) == pytest.approx(1.0 / 0.3)


def test_auc_gini_and_calibration_table():
    y = [0, 0, 1, 1]
    p = [0.1, 0.4, 0.35, 0.8]
    assert metrics.roc_auc(y, p) == pytest.approx(0.75)
    assert metrics.gini(y, p) == pytest.approx(0.5)
    table = metrics.calibration_table(y, p, bins=2)
    assert table["observed_rate"].tolist() == pytest.approx([0.5, 0.5])
    assert table["mean_predicted"].tolist() == pytest.approx([0.225, 0.6])
    assert math.isnan(metrics.roc_auc([0, 0], [0.1, 0.2]))


def test_a_ranked_score_with_unit_weights_gives_the_plain_metrics():
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.2).astype(int)
    # Rounded to two decimals: many tied scores, which every metric must treat as one threshold.
    score = np.round(np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1), 2)
    found = metrics.RankedScore(y, score).metrics()
    assert found["auc"] == pytest.approx(metrics.roc_auc(y, score), abs=1e-12)
    assert found["ks"] == pytest.approx(metrics.ks_statistic(y, score), abs=1e-12)
    assert found["pr_auc"] == pytest.approx(metrics.pr_auc(y, score), abs=1e-12)
    assert found["brier"] == pytest.approx(metrics.brier(y, score), abs=1e-12)


def test_weighing_a_row_by_k_is_drawing_it_k_times():
    y = np.array([0, 1, 0, 1, 0, 1])
    score = np.array([0.1, 0.2, 0.2, 0.6, 0.7, 0.9])  # 0.2 is a tie across classes
    weight = np.array([2, 0, 1, 3, 1, 1])  # row 1 (a positive) not drawn, row 3 three times
    drawn = np.repeat(np.arange(6), weight)
    weighted = metrics.RankedScore(y, score).metrics(weight)
    assert weighted == pytest.approx(metrics.RankedScore(y[drawn], score[drawn]).metrics())
    assert weighted["auc"] == pytest.approx(metrics.roc_auc(y[drawn], score[drawn]))
    assert weighted["pr_auc"] == pytest.approx(metrics.pr_auc(y[drawn], score[drawn]))


def test_metrics_needing_both_classes_are_nan_without_one():
    found = metrics.RankedScore([0, 0, 1], [0.1, 0.5, 0.9]).metrics(np.array([1, 1, 0]))
    assert math.isnan(found["auc"]) and math.isnan(found["ks"]) and math.isnan(found["pr_auc"])
    assert found["brier"] == pytest.approx((0.01 + 0.25) / 2)  # the drawn rows' squared errors
