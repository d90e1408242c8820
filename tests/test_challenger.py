"""The WoE scorecard challenger on a hand-made sample whose risk drivers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.challenger import fit_scorecard_challenger
from training.scorecard import Scorecard


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """4,000 rows: default odds rise with ``utilisation`` (10% missing) and in region ``c``;
    ``noise`` carries no information."""
    rng = np.random.default_rng(0)
    n = 4000
    utilisation = rng.uniform(0, 1, n)
    region = rng.choice(["a", "b", "c"], n)
    logit = -3 + 3 * utilisation + 0.8 * (region == "c")
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    utilisation[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "utilisation": utilisation.astype("float32"),
            "noise": rng.normal(size=n),
            "region": pd.Categorical(region),
            "label": label,
        }
    )


@pytest.fixture(scope="module")
def challenger(sample):
    return fit_scorecard_challenger(
        sample, ["utilisation", "noise", "region"], ["region"], {"utilisation": 1}, Scorecard()
    )


def test_keeps_the_informative_characteristics_only(challenger):
    assert challenger.characteristics == ["utilisation", "region"]


def test_bins_follow_the_declared_direction_with_missing_and_special_bins(challenger, sample):
    table = challenger.points_table()
    assert list(table.columns) == ["characteristic", "bin", "count", "event_rate", "woe", "points"]
    rows = table[table["characteristic"] == "utilisation"]
    regular = rows[~rows["bin"].isin(["Special", "Missing"])]
    assert regular["event_rate"].is_monotonic_increasing and len(regular) >= 3
    assert regular["points"].is_monotonic_decreasing  # riskier bins score fewer points
    missing = rows[rows["bin"] == "Missing"]
    assert missing["count"].tolist() == [int(sample["utilisation"].isna().sum())]
    assert (rows["bin"] == "Special").sum() == 1
    assert set(table.loc[table["characteristic"] == "region", "bin"]) >= {"a", "b", "c"}


def test_points_are_on_the_champions_scale(challenger, sample):
    probability = challenger.predict_proba(sample)
    np.testing.assert_allclose(
        challenger.points(sample), Scorecard().points(probability), rtol=0, atol=1e-6
    )


def test_a_row_scores_the_sum_of_its_bins_points(challenger, sample):
    table = challenger.points_table()
    row = sample[sample["utilisation"].isna() & (sample["region"] == "c")].head(1)
    by_bin = table.set_index(["characteristic", "bin"])["points"]
    expected = by_bin[("utilisation", "Missing")] + by_bin[("region", "c")]
    assert challenger.points(row)[0] == pytest.approx(expected, abs=1e-9)


def test_at_most_the_configured_number_of_characteristics(sample, monkeypatch):
    from crmscore.settings import get_settings

    monkeypatch.setenv("CRMSCORE_TRAINING__CHALLENGER_CHARACTERISTICS", "1")
    get_settings.cache_clear()
    try:
        one = fit_scorecard_challenger(
            sample, ["utilisation", "noise", "region"], ["region"], {"utilisation": 1}, Scorecard()
        )
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert one.characteristics == ["utilisation"]  # the most informative of the two
