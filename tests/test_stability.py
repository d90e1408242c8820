"""Population stability of scores and inputs against a training reference (PSI / CSI)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from training.stability import ColumnReference, StabilityReference, band


def test_a_numeric_reference_bins_by_training_deciles_with_a_missing_bin():
    reference = ColumnReference.of(np.r_[np.arange(100.0), [np.nan] * 25], bins=2)
    assert reference.edges == [49.5]
    assert reference.shares == [0.4, 0.4, 0.2]
    # 60 below the median, 20 above, 20 missing: only the two regular bins move.
    actual = np.r_[np.zeros(60), np.full(20, 99.0), [np.nan] * 20]
    by_hand = 0.2 * math.log(0.6 / 0.4) - 0.2 * math.log(0.2 / 0.4)
    assert reference.index(actual) == pytest.approx(by_hand)


def test_an_unseen_level_counts_as_missing():
    reference = ColumnReference.of(pd.Series(["a", "a", "b", None], dtype=object))
    assert reference.levels == ["a", "b"] and reference.shares == [0.5, 0.25, 0.25]
    assert reference.distribution(pd.Series(["a", "z", "b", "b"])).tolist() == [0.25, 0.5, 0.25]


@pytest.mark.parametrize(
    "index, expected", [(0.0, "green"), (0.0999, "green"), (0.10, "amber"), (0.25, "red")]
)
def test_bands_are_the_usual_thresholds(index, expected):
    assert band(index) == expected


def test_compare_reports_score_psi_csi_and_missing_changes():
    train = pd.DataFrame({"x": np.arange(1000.0), "y": np.r_[np.arange(900.0), [np.nan] * 100]})
    reference = StabilityReference.of(train, ["x", "y"], score=np.linspace(0, 1, 1000))
    again = StabilityReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert again == reference
    shifted = pd.DataFrame({"x": np.arange(1000.0) + 500, "y": [np.nan] * 1000})
    table = again.compare(shifted, score=np.linspace(0, 1, 1000))
    assert table["column"].tolist() == ["score", "y", "x"]  # score first, then largest CSI
    assert table.loc[0, "index"] == pytest.approx(0.0) and table.loc[0, "band"] == "green"
    assert table.set_index("column").loc["y", "missing_change"] == pytest.approx(0.9)
    assert set(table.loc[1:, "band"]) == {"red"}
