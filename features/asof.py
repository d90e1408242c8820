"""Features as of any day: a loan application is scored at its decision date, not at a month start.

The feature SQL is written for month-start snapshots (a snapshot sees the calendar months before
it; windows are months of a dense spine). To get the features as of a day ``D`` with *the same
SQL*, the calendar is moved instead: every date and time of the customer's history is shifted
``δ`` days later, where ``D + δ`` is the next month start ``S``; the snapshot at ``S`` of the
shifted history is then the customer as of ``D``: everything strictly before ``D``, nothing on or
after it. Windows become "the last k months before D" (to within the length of the months
crossed, at most 3 days over a year). Ages, tenures and maturities are exact: both ends move.

Days with the same ``δ`` share one build over their customers only, so a set of cases costs at
most 31 small builds. With more than one, the cases' customers' rows are first copied out of the
raw tables in one read (into a temporary folder beside the feature tables, as the build's passes
are), which the builds then share; each build read the whole bank before (2,000 cases over 27
days at 100,000 customers: 15.6 s, was 89.5 s). As-of instants are days: the history used ends at
the start of that day (a time of day is dropped, which can only leave out, never let in, events of
that day).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.definitions import JOIN_KEY, TIMESTAMP

if TYPE_CHECKING:
    from features.build import RawDataset


def shift_to_month_start(days: pd.Series) -> np.ndarray:
    """Days to add to each day so it falls on a month start (0 for a month start itself)."""
    days = pd.to_datetime(days).dt.normalize()
    following = (days + pd.offsets.MonthBegin(1)).where(days.dt.day != 1, days)
    return (following - days).dt.days.to_numpy()


def features_as_of(entities: pd.DataFrame, names: list[str] | None = None) -> pd.DataFrame:
    """``entities`` (``customer_id``, ``event_timestamp``: any day, naive or UTC) with the built
    features (``names``, default all) of each customer as of the start of that day.

    Same rows in the same order; a customer with no history before the day gets nulls. Features
    are those the last ``crmscore features build`` wrote (same views, same columns).
    """
    from features.build import RawDataset, split_by_customer
    from features.catalog import built_features
    from features.store import tables_dir

    built = built_features()
    wanted = set(names) if names is not None else None
    days = _days(entities[TIMESTAMP])
    shifts = shift_to_month_start(days)
    result = pd.DataFrame({JOIN_KEY: entities[JOIN_KEY].astype("int64").to_numpy(), "day": days})
    dataset = RawDataset.open()
    if len(np.unique(shifts)) == 1:
        parts = _builds(dataset, result, shifts, built, wanted)
    else:  # one read of the bank for every build, kept on the data's disk beside the tables
        # (not /tmp, which may be a small in-memory file system)
        with tempfile.TemporaryDirectory(prefix=".asof-", dir=tables_dir()) as work:
            (cases,) = split_by_customer(dataset, Path(work), 1, result[JOIN_KEY].unique())
            parts = _builds(cases, result, shifts, built, wanted)
    columns = [f.name for fs in built.values() for f in fs if wanted is None or f.name in wanted]
    found = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[JOIN_KEY, "day"])
    )
    merged = result.merge(found, on=[JOIN_KEY, "day"], how="left")
    merged = merged.reindex(columns=[JOIN_KEY, "day", *columns])
    merged.index = entities.index
    return merged.drop(columns=[JOIN_KEY, "day"])


def _builds(
    dataset: RawDataset,
    result: pd.DataFrame,
    shifts: np.ndarray,
    built: dict,
    wanted: set[str] | None,
) -> list[pd.DataFrame]:
    """One build per shift over its customers: their features at the shifted snapshots, each row
    keyed by customer and (unshifted) day."""
    from features.build import connect, feature_table_sql
    from features.staging import statements

    parts = []
    for shift in np.unique(shifts):
        cases = result[shifts == shift]
        snapshots = (cases["day"] + pd.Timedelta(days=int(shift))).dt.tz_localize("UTC")
        customers = sorted(cases[JOIN_KEY].unique().tolist())
        until = f"{snapshots.max():%Y-%m-%d}"
        wanted_rows = pd.DataFrame({JOIN_KEY: cases[JOIN_KEY].to_numpy(), TIMESTAMP: snapshots})
        with connect(dataset, customers=customers, shift_days=int(shift)) as con:
            for _, sql in statements(dataset.contract, set(dataset.columns), until):
                con.execute(sql)
            con.register("wanted_rows", wanted_rows.drop_duplicates())
            frames = []
            for group in dataset.groups():
                features = [
                    f for f in built.get(group.name, []) if wanted is None or f.name in wanted
                ]
                if features:
                    frame = con.execute(
                        f"SELECT f.* FROM ({feature_table_sql(group, features)}) f "
                        f"SEMI JOIN wanted_rows w USING ({JOIN_KEY}, {TIMESTAMP})"
                    ).df()
                    frames.append(frame.set_index([JOIN_KEY, TIMESTAMP]))
        if frames:
            joined = pd.concat(frames, axis=1).reset_index()
            joined["day"] = joined[TIMESTAMP].dt.tz_convert(None) - pd.Timedelta(days=int(shift))
            parts.append(joined.drop(columns=TIMESTAMP))
    return parts


def _days(timestamps: pd.Series) -> pd.Series:
    """Naive UTC days (midnight) of ``timestamps``."""
    stamps = pd.to_datetime(timestamps)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.dt.normalize().reset_index(drop=True)
