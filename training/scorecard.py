"""Scorecard points: a probability of default restated on the scale risk officers read.

``points = offset + factor * ln(odds_good)`` with ``odds_good = (1 - pd) / pd``. The scaling is
fixed by two numbers: ``base_points`` at ``base_odds`` good:bad, and ``points_to_double`` the odds
(e.g. 600 points at 50:1, 20 points to double). Higher points = safer customer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crmscore.settings import get_settings

_EPS = 1e-9


@dataclass(frozen=True)
class Scorecard:
    base_points: float = 600.0
    base_odds: float = 50.0
    points_to_double: float = 20.0

    @classmethod
    def from_settings(cls) -> Scorecard:
        t = get_settings().training
        return cls(t.base_points, t.base_odds, t.points_to_double)

    @property
    def factor(self) -> float:
        return self.points_to_double / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_points - self.factor * math.log(self.base_odds)

    def points(self, probability_of_default) -> np.ndarray:
        """Points for each probability of default (strictly decreasing in it)."""
        p = np.clip(np.asarray(probability_of_default, dtype=float), _EPS, 1 - _EPS)
        return self.offset + self.factor * np.log((1 - p) / p)
