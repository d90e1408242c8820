"""Out-of-time split by snapshot: train on the past, validate on the recent past, test on the last.

Two kinds of leak are closed:

- **Across time.** A snapshot ``s`` "sees" outcomes up to ``s + horizon``. Every train/validation
  snapshot satisfies ``s + gap <= T`` (``T`` the test snapshot, ``gap = horizon``), so no training
  label looks into the test window. When the data is too short for that (24 months and a 12-month
  default horizon), the gap shrinks to the largest value that still leaves ``min_train +
  validation`` snapshots, and the split says so.
- **Across customers.** Consecutive snapshots of one customer share one future event (a churn in
  July is a positive at May, June and July). A validation set made of the *same* customers rewards
  memorising them, and early stopping then runs far too long. So validation rows come from a
  held-out group of customers (a fixed hash of ``customer_id``) who never appear in training. When
  the train/test gap had to shrink, the test snapshot is also restricted to that group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd


def holdout_mask(customer_ids, share: float) -> np.ndarray:
    """True for the customers in the held-out group: a stable hash, so reruns pick the same ones."""
    ids = np.asarray(customer_ids).astype("uint64")
    bucket = (ids * np.uint64(2654435761)) % np.uint64(2**32) % np.uint64(1000)
    return bucket < np.uint64(round(share * 1000))


#: What :meth:`OutOfTimeSplit.roles` gives a labelled row, in the order training sets keep them.
ROLES = ("train", "valid", "test", "unused")


@dataclass(frozen=True)
class OutOfTimeSplit:
    """Which snapshots (months, for rows dated within them) train, validate and test a model.

    With ``cross_validated`` there is no test snapshot: the data hold too few snapshots (or too
    few events) for an out-of-time test, so the performance is measured by repeated
    cross-validation over every labelled row instead, and the final model trains on all of them
    (validation rows: the held-out customers, for early stopping and calibration).
    """

    train: tuple[date, ...]
    valid: tuple[date, ...]
    test: date
    gap_months: int
    note: str = ""
    #: Share of customers held out of training (validation rows, and test rows if the gap shrank).
    holdout_share: float = 0.3
    horizon_months: int = 0
    cross_validated: bool = False

    @property
    def test_holdout_only(self) -> bool:
        return self.gap_months < self.horizon_months and not self.cross_validated

    @property
    def evaluation(self) -> str:
        return "cross_validation" if self.cross_validated else "out_of_time"

    def roles(self, frame: pd.DataFrame) -> np.ndarray:
        """``train``, ``valid``, ``test`` or ``unused`` for each (customer_id, event_timestamp);
        a row belongs to the snapshot (month) it is dated in."""
        held = holdout_mask(frame["customer_id"], self.holdout_share)
        month = pd.to_datetime(frame["event_timestamp"]).dt.to_period("M").dt.start_time
        is_test = (month == pd.Timestamp(self.test)).to_numpy() & (not self.cross_validated)
        is_valid = month.isin(pd.to_datetime(list(self.valid))).to_numpy()
        is_train = month.isin(pd.to_datetime(list(self.train))).to_numpy()
        role = np.full(len(frame), "unused", dtype=object)
        role[is_train & ~held] = "train"
        role[(is_valid | (is_train & self.cross_validated)) & held] = "valid"
        role[is_test & (held if self.test_holdout_only else True)] = "test"
        return role

    def as_params(self) -> dict[str, str]:
        return {
            "split.evaluation": self.evaluation,
            "split.train": f"{self.train[0]}..{self.train[-1]} ({len(self.train)})",
            "split.valid": ",".join(map(str, self.valid)) or "holdout customers of every month",
            "split.test": "-" if self.cross_validated else str(self.test),
            "split.gap_months": str(self.gap_months),
            "split.holdout_share": str(self.holdout_share),
            "split.test_customers": "holdout group" if self.test_holdout_only else "all",
        }


def cross_validation_split(
    snapshots: list[date], horizon_months: int, holdout_share: float, why: str
) -> OutOfTimeSplit:
    """Every snapshot for training, evaluated by cross-validation (see :class:`OutOfTimeSplit`);
    ``why`` says plainly why there is no out-of-time test."""
    ordered = sorted(set(snapshots))
    if not ordered:
        raise ValueError("no labelled snapshots or cases: nothing to train on")
    note = f"evaluated by repeated cross-validation, not out of time: {why}"
    return OutOfTimeSplit(
        tuple(ordered), (), ordered[-1], 0, note, holdout_share, horizon_months, True
    )


def split_snapshots(
    snapshots: list[date],
    horizon_months: int,
    *,
    validation: int = 2,
    min_train: int = 3,
    max_train: int = 12,
    holdout_share: float = 0.3,
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
            valid = tuple(earlier[-validation:])
            return OutOfTimeSplit(
                tuple(train), valid, test, gap, note, holdout_share, horizon_months
            )
    raise ValueError(
        f"need at least {validation + min_train + 1} fully labelled snapshots for an out-of-time "
        f"split, found {len(ordered)} ({ordered[0]}..{ordered[-1]}): generate more months of data"
    )
