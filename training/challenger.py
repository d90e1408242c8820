"""The credit-risk challenger: a traditional WoE-binned logistic scorecard (optbinning).

Regulators and risk committees know this model: each characteristic is cut into a few bins whose
default rates move one way only (monotone), every bin gets a weight of evidence (WoE), a logistic
regression weighs the WoEs, and the result is a table of points per bin that adds up to the score.
Missing values and declared special codes get bins of their own. The points are scaled exactly
like the champion's (:class:`training.scorecard.Scorecard`: ``base_points`` at ``base_odds``,
``points_to_double``), so a challenger score and a champion score mean the same odds.

It is fitted on the champion's training rows and compared with it on the same test rows (the
model document); it is never promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from crmscore.settings import get_settings
from training.dataset import drawn
from training.scorecard import Scorecard

#: optbinning's name for the direction of the event rate across bins.
_TREND = {1: "ascending", -1: "descending", 0: "auto_asc_desc"}


def _as_binning_input(frame: pd.DataFrame, features: list[str], categorical: list[str]):
    """Numeric columns as float64 and categoricals as objects with NaN for missing (optbinning)."""
    out = frame[features].astype({f: "float64" for f in features if f not in categorical})
    for c in categorical:
        out[c] = out[c].astype(object).where(out[c].notna(), np.nan)
    return out


@dataclass
class ScorecardChallenger:
    """A fitted optbinning scorecard and the inputs it reads."""

    scorecard: Any  # optbinning.Scorecard, fitted
    features: list[str]
    categorical: list[str]

    @property
    def characteristics(self) -> list[str]:
        """The characteristics the scorecard kept (the most informative), in input order."""
        return [str(name) for name in self.scorecard.binning_process_.get_support(names=True)]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of default per row."""
        X = _as_binning_input(frame, self.features, self.categorical)
        return self.scorecard.predict_proba(X)[:, 1]

    def points(self, frame: pd.DataFrame) -> np.ndarray:
        """The score per row: the sum of its bins' points (higher = safer)."""
        return self.scorecard.score(_as_binning_input(frame, self.features, self.categorical))

    def points_table(self) -> pd.DataFrame:
        """One row per (characteristic, bin): ``characteristic, bin, count, event_rate, woe,
        points``, the special and missing bins included."""
        table = self.scorecard.table(style="detailed")
        return pd.DataFrame(
            {
                "characteristic": table["Variable"].astype(str),
                "bin": table["Bin"].map(_bin_label),
                "count": table["Count"].astype(int),
                "event_rate": table["Event rate"].astype(float),
                "woe": table["WoE"].astype(float),
                "points": table["Points"].astype(float),
            }
        ).reset_index(drop=True)


def _bin_label(value) -> str:
    """optbinning's bin as text: intervals are already text, categorical bins are level lists."""
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(map(str, value))
    return str(value)


def fit_scorecard_challenger(
    train: pd.DataFrame,
    features: list[str],
    categorical: list[str],
    monotone: dict[str, int],
    scaling: Scorecard,
) -> ScorecardChallenger:
    """Bin every input on ``train`` (monotone: the definition's direction where it has one, the
    better of ascending/descending elsewhere), keep the characteristics with the most information
    value, fit the logistic regression on their WoEs and scale the points to ``scaling``."""
    from optbinning import BinningProcess
    from optbinning import Scorecard as OptbinningScorecard
    from sklearn.linear_model import LogisticRegression

    config = get_settings().training
    train = drawn(train, config.challenger_max_rows)
    numeric = [f for f in features if f not in categorical]
    binning = BinningProcess(
        variable_names=list(features),
        categorical_variables=list(categorical) or None,
        special_codes=list(config.challenger_special_codes) or None,
        max_n_bins=config.challenger_max_bins,
        min_bin_size=config.challenger_min_bin_share,
        selection_criteria={
            "iv": {
                "min": config.challenger_min_iv,
                "strategy": "highest",
                "top": config.challenger_characteristics,
            }
        },
        binning_fit_params={f: {"monotonic_trend": _TREND[monotone.get(f, 0)]} for f in numeric},
    )
    scorecard = OptbinningScorecard(
        binning_process=binning,
        estimator=LogisticRegression(max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={
            "pdo": scaling.points_to_double,
            "odds": scaling.base_odds,
            "scorecard_points": scaling.base_points,
        },
    )
    X = _as_binning_input(train, features, categorical)
    # Missing and special values score by their own bin's WoE (optbinning's default is WoE 0).
    scorecard.fit(
        X, train["label"].to_numpy(), metric_special="empirical", metric_missing="empirical"
    )
    return ScorecardChallenger(scorecard, list(features), list(categorical))
