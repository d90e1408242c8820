"""The master scale: a probability of default restated as a rating grade.

Credit risk reads PDs through a bank-wide table of grades, each an interval of PD: grade ``g``
holds the PDs in ``(upper[g-1], upper[g]]``, the best grade starting at 0 and the worst ending at
1. A grade means the same default rate whichever model or portfolio produced the PD, so limits,
pricing and back-testing are set per grade. The boundaries are configuration
(``training.master_scale`` in :mod:`crmscore.settings`), not a property of one model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd

from crmscore.settings import get_settings


@dataclass(frozen=True)
class MasterScale:
    """Grades, best first, and the upper PD bound of each (the last is 1)."""

    grades: tuple[str, ...]
    upper: tuple[float, ...]

    def __post_init__(self) -> None:
        bounds = np.asarray(self.upper, dtype=float)
        if len(self.grades) != len(bounds) or len(bounds) < 2:
            raise ValueError("the master scale needs at least two grades, one upper PD each")
        if len(set(self.grades)) != len(self.grades):
            raise ValueError(f"master scale grades must be unique, got {list(self.grades)}")
        if not (np.all(np.diff(bounds) > 0) and bounds[0] > 0 and bounds[-1] == 1.0):
            raise ValueError(
                f"master scale upper PDs must rise strictly from above 0 to exactly 1, "
                f"got {list(self.upper)}"
            )

    @classmethod
    def from_settings(cls) -> MasterScale:
        return _configured(tuple(get_settings().training.master_scale.items()))

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.upper, dtype=float), np.asarray(self.grades, dtype=object)

    def grade(self, probability_of_default) -> np.ndarray:
        """The grade of each PD (object array; None where the PD is missing).

        A PD exactly on a boundary belongs to the better grade: the bound is its upper limit.
        """
        upper, names = self._arrays
        p = np.asarray(probability_of_default, dtype=float)
        index = np.searchsorted(upper, np.clip(p, 0.0, 1.0), side="left")
        return np.where(np.isnan(p), None, names[np.minimum(index, len(names) - 1)])

    def table(self) -> pd.DataFrame:
        """One row per grade: ``grade``, ``pd_from`` (exclusive) and ``pd_to`` (inclusive)."""
        return pd.DataFrame(
            {"grade": self.grades, "pd_from": (0.0, *self.upper[:-1]), "pd_to": self.upper}
        )


def rating_grade(probability_of_default) -> np.ndarray:
    """PD -> master-scale grade with the configured boundaries (see :class:`MasterScale`)."""
    return MasterScale.from_settings().grade(probability_of_default)


@lru_cache(maxsize=8)
def _configured(scale: tuple[tuple[str, float], ...]) -> MasterScale:
    """The scale of settings' ``(grade, upper PD)`` pairs, built and checked once per value:
    every scored PD is graded through it (the /score path)."""
    return MasterScale(tuple(g for g, _ in scale), tuple(float(u) for _, u in scale))
