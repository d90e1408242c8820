"""Back-testing PDs per rating grade with the Jeffreys test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from training.backtest import grade_backtest, jeffreys_pvalue
from training.master_scale import MasterScale

SCALE = MasterScale(("A", "B"), (0.05, 1.0))


def test_jeffreys_pvalue_is_the_beta_posterior_below_the_pd():
    assert jeffreys_pvalue(3, 100, 0.02) == pytest.approx(beta.cdf(0.02, 3.5, 97.5))
    # 10 defaults in 100 at a 2% PD: the PD is far too low.
    assert jeffreys_pvalue(10, 100, 0.02) < 1e-4
    assert jeffreys_pvalue(2, 100, 0.02) > 0.3


def test_per_grade_counts_rates_and_status():
    # Grade A: 100 customers at PD 1%, 1 default (fine). Grade B: 50 at PD 10%, 20 defaults.
    probability = np.r_[np.full(100, 0.01), np.full(50, 0.10)]
    y = np.r_[np.zeros(99), [1], np.ones(20), np.zeros(30)]
    table = grade_backtest(y, probability, SCALE).set_index("grade")
    assert table["customers"].tolist() == [100, 50, 150]
    assert table["defaults"].tolist() == [1, 20, 21]
    assert table.loc["B", "realised_rate"] == pytest.approx(0.4)
    assert table.loc["B", "jeffreys_pvalue"] == pytest.approx(beta.cdf(0.10, 20.5, 30.5))
    assert table["status"].tolist() == ["green", "red", "red"]


def test_an_empty_grade_is_listed_and_green():
    table = grade_backtest([0, 1], [0.01, 0.02], SCALE).set_index("grade")
    assert table.loc["B", "customers"] == 0 and table.loc["B", "status"] == "green"
