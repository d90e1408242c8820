"""Out-of-time split by snapshot: train on the past, validate on the recent past, test on the last.

Label windows overlap in time: a training snapshot ``s`` "sees" outcomes up to ``s + horizon``. To
keep the test snapshot ``T`` honest, every train/validation snapshot satisfies
``s + gap <= T`` with ``gap = horizon``, so no training label looks into the test window. When the
data is too short for that (24 months of history and a 12-month default horizon), the gap shrinks
to the largest value that still leaves ``min_train + validation`` snapshots, and the split says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd


@dataclass(frozen=True)
class OutOfTimeSplit:
    train: tuple[date, ...]
    valid: tuple[date, ...]
    test: date
    gap_months: int
    note: str = ""

    def role(self, snapshot) -> str:
        day = pd.Timestamp(snapshot).date()
        if day == self.test:
            return "test"
        return "valid" if day in self.valid else "train" if day in self.train else "unused"

    def as_params(self) -> dict[str, str]:
        return {
            "split.train": f"{self.train[0]}..{self.train[-1]} ({len(self.train)})",
            "split.valid": ",".join(map(str, self.valid)),
            "split.test": str(self.test),
            "split.gap_months": str(self.gap_months),
        }


def split_snapshots(
    snapshots: list[date],
    horizon_months: int,
    *,
    validation: int = 2,
    min_train: int = 3,
    max_train: int = 12,
) -> OutOfTimeSplit:
    """Split fully labelled month-start ``snapshots`` out of time (see the module docstring)."""
    ordered = sorted(set(snapshots))
    if not ordered:
        raise ValueError("no fully labelled snapshots: the data is shorter than the label horizon")
    test = ordered[-1]
    for gap in range(horizon_months, -1, -1):
        limit = pd.Timestamp(test) - pd.DateOffset(months=gap)
        earlier = [s for s in ordered[:-1] if pd.Timestamp(s) <= limit]
        if len(earlier) >= validation + min_train:
            note = (
                ""
                if gap == horizon_months
                else (
                    f"train/test gap shortened from {horizon_months} to {gap} months: "
                    f"the data holds too few fully labelled snapshots"
                )
            )
            train = earlier[: len(earlier) - validation][-max_train:]
            return OutOfTimeSplit(tuple(train), tuple(earlier[-validation:]), test, gap, note)
    raise ValueError(
        f"need at least {validation + min_train + 1} fully labelled snapshots for an out-of-time "
        f"split, found {len(ordered)} ({ordered[0]}..{ordered[-1]}): generate more months of data"
    )
