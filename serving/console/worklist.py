"""A customer manager's week: who is due for contact, the most valuable at-risk first.

DOMAIN.md's contact plan by tier (A, B weekly; C every 14 days; D monthly,
:data:`serving.tiers.CONTACT_EVERY_DAYS` via ``contact_every_days``): a customer is due this week
when the planned contact (the manager's last call + the cadence) falls within the 7 days starting
at the snapshot, or is already past, or the manager never called. The list is
sorted by **value at risk** = yearly value x churn probability: the profit the bank stands to
lose, which is where a visit pays most. Customers with no open account left are not on it: they
are win-back cases, not visits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.console.book import Book

#: Days the worklist looks ahead from the snapshot.
WEEK_DAYS = 7


def due_this_week(book: Book, manager_id: int) -> pd.DataFrame:
    """The manager's customers due within the week, by value at risk (highest first)."""
    scores, features = book.scores, book.features
    mine = ((scores["manager_id"] == manager_id) & scores["active"].astype(bool)).to_numpy()
    # without an interaction log no call is known: everyone is due
    since = features.get("int_days_since_manager_call", pd.Series(np.nan, index=features.index))
    since = since.to_numpy(dtype=float)
    cadence = scores["contact_every_days"].to_numpy(dtype=float)
    due = mine & (np.isnan(since) | (since + WEEK_DAYS > cadence))
    rows = scores.loc[due].copy()
    rows["days_since_contact"] = since[due]
    # the planned contact date: last call + cadence, but never before the snapshot
    wait = np.where(np.isnan(since[due]), 0.0, np.maximum(cadence[due] - since[due], 0.0))
    rows["due_on"] = (book.snapshot + pd.to_timedelta(np.floor(wait), unit="D")).date
    rows["value_at_risk"] = (rows["value"] * rows["churn_probability"]).round(2)
    return rows.sort_values(
        ["value_at_risk", "customer_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def managers(book: Book) -> list[int]:
    """Every manager id with at least one customer, ascending."""
    ids = book.scores["manager_id"].dropna().astype("int64").unique()
    return sorted(int(i) for i in ids)
