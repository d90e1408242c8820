"""Management's portfolio view: scores and tiers by segment, region, branch and manager, the
expected churners and defaults, and how they moved over the last snapshots.

Expected churners = the sum of churn probabilities over customers with an open account (the
number the models expect to leave within 3 months); expected defaults = the sum of PDs over
customers holding credit (12 months). Both are model expectations, not counts of events.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.tiers import TIERS

#: Page grouping -> column of the book (``manager`` and ``branch`` are ids).
GROUPINGS = {
    "segment": "segment",
    "region": "region",
    "branch": "branch_id",
    "manager": "manager_id",
}
#: Histogram bins of a probability, in percent.
PROBABILITY_BINS = np.array([0, 1, 2, 5, 10, 20, 30, 50, 100]) / 100


def _measures(frame: pd.DataFrame) -> dict[str, float]:
    active = frame["active"].astype(bool)
    credit = active & frame["has_credit"].astype(bool)
    tiers = frame["tier"].value_counts()
    return {
        "customers": int(len(frame)),
        "active": int(active.sum()),
        "mean_churn": float(frame.loc[active, "churn_probability"].mean()),
        "expected_churners": float(frame.loc[active, "churn_probability"].sum()),
        "credit_customers": int(credit.sum()),
        "mean_pd": float(frame.loc[credit, "probability_of_default"].mean()),
        "expected_defaults": float(frame.loc[credit, "probability_of_default"].sum()),
        "value": float(frame["value"].sum()),
        **{f"tier_{t}": int(tiers.get(t, 0)) for t in TIERS},
    }


def by_group(scores: pd.DataFrame, grouping: str) -> pd.DataFrame:
    """One row per group (customers with no manager form the group "none"), largest first."""
    column = GROUPINGS[grouping]
    keys = scores[column].astype(object).where(scores[column].notna(), "none")
    keys = keys.map(lambda v: str(int(v)) if isinstance(v, float) else str(v))
    rows = [{"group": key, **_measures(part)} for key, part in scores.groupby(keys, sort=True)]
    frame = pd.DataFrame(rows)
    return frame.sort_values(["customers", "group"], ascending=[False, True]).reset_index(drop=True)


def over_snapshots(history: pd.DataFrame) -> pd.DataFrame:
    """The whole book's measures at every snapshot, oldest first."""
    rows = [{"snapshot": s, **_measures(part)} for s, part in history.groupby("snapshot")]
    return pd.DataFrame(rows).sort_values("snapshot").reset_index(drop=True)


def histogram(
    values: pd.Series, bins: np.ndarray = PROBABILITY_BINS
) -> tuple[list[str], list[int]]:
    """Counts of ``values`` per bin, with labels like ``2–5%``."""
    counts, _ = np.histogram(values.dropna().clip(0, 1), bins=bins)
    labels = [f"{lo * 100:g}–{hi * 100:g}%" for lo, hi in zip(bins[:-1], bins[1:], strict=True)]
    return labels, [int(c) for c in counts]
