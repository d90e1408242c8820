"""Point-in-time correct training sets: through Feast's offline store (DuckDB) at month starts, and
from the raw history at any other day (:mod:`features.asof`: a loan application's decision date).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.catalog import (
    as_model_dtypes,
    categorical_features,
    feature_names,
    taken_in_model_dtypes,
)
from features.definitions import JOIN_KEY, TIMESTAMP

_ROW = "__crmscore_row"


def get_training_set(entity_df: pd.DataFrame, service: str) -> pd.DataFrame:
    """``entity_df`` (``customer_id``, ``event_timestamp``, any label columns) plus the features of
    feature service ``service``, as they were known at each row's timestamp.

    Same rows in the same order; feature columns carry plain names (no view prefix); numeric
    features are float64 and categorical ones str (:func:`features.catalog.as_model_dtypes`).
    For each row at a month start Feast takes the latest snapshot at or before ``event_timestamp``
    and within the TTL; a snapshot only holds data from strictly before it, so nothing from the
    row's future leaks in. Rows at any other day get the features as of the start of that day,
    computed from the raw history by the same SQL (:func:`features.asof.features_as_of`; equal to
    the snapshot's values at a month start). Naive timestamps are read as UTC. Rows with no
    history (unknown customer, before joining) get nulls.
    """
    missing = {JOIN_KEY, TIMESTAMP} - set(entity_df.columns)
    if missing:
        raise ValueError(f"entity_df lacks column(s) {sorted(missing)}")
    stamps = _as_utc(entity_df[TIMESTAMP])
    # A month start: day 1 at midnight (UTC). Compared field by field: to_period drops the zone.
    monthly = ((stamps.dt.day == 1) & (stamps == stamps.dt.normalize())).to_numpy()
    if monthly.all():
        return _snapshot_training_set(entity_df, service)
    from features.asof import features_as_of

    features = feature_names(service)
    parts = [
        as_model_dtypes(
            pd.concat([entity_df[~monthly], features_as_of(entity_df[~monthly], features)], axis=1)
        )
    ]
    if monthly.any():
        parts.append(_snapshot_training_set(entity_df[monthly], service))
    return pd.concat(parts).loc[entity_df.index]


def _snapshot_training_set(entity_df: pd.DataFrame, service: str) -> pd.DataFrame:
    """Feast's point-in-time join of month-start rows (see :func:`get_training_set`)."""
    from features.store import get_store

    table, at = point_in_time(entity_df, get_store().get_feature_service(service))
    return in_entity_order(table, at, entity_df, service)


def point_in_time(entity_df: pd.DataFrame, features) -> tuple[pa.Table, np.ndarray]:
    """Feast's point-in-time join of ``entity_df``'s ``customer_id`` and ``event_timestamp`` (naive
    = UTC) for ``features`` (a feature service or feature references, plain names): its Arrow
    answer, and ``at``, the answer's row for each entity row (Feast answers in its own order)."""
    from features.store import get_store

    entities = pd.DataFrame(
        {
            JOIN_KEY: entity_df[JOIN_KEY].astype("int64").to_numpy(),
            # .array keeps the zone; .to_numpy() made one Timestamp object per row, parsed back.
            TIMESTAMP: _as_utc(entity_df[TIMESTAMP]).array,
            _ROW: range(len(entity_df)),
        }
    )
    table = (
        get_store()
        .get_historical_features(entity_df=entities, features=features, full_feature_names=False)
        .to_arrow()
    )
    at = np.full(len(entity_df), -1)
    at[table[_ROW].to_numpy()] = np.arange(table.num_rows)
    if np.count_nonzero(at >= 0) != table.num_rows:  # one row would silently replace another
        raise ValueError("Feast returned an entity row twice")
    return table, at


def in_entity_order(
    table: pa.Table, at: np.ndarray, entity_df: pd.DataFrame, service: str
) -> pd.DataFrame:
    """``entity_df`` with the features of ``service`` from row ``at[i]`` of ``table`` for each
    entity row ``i`` (-1: no row, so nulls), in the model dtypes of
    :func:`features.catalog.as_model_dtypes`.

    The numeric features' block (:func:`features.catalog.taken_in_model_dtypes`) becomes the
    frame's block as it is: one copy of the features. Arrow's take, the conversion to pandas, the
    concatenation and the dtype pass made four: four 250,000-row fetches of a 1M-customer bank
    took 45.1 s that way and 32.6 s this way.
    """
    names = feature_names(service)
    strings = set(categorical_features(service))
    numeric = [name for name in names if name not in strings]
    text = [name for name in names if name in strings]
    block, values = taken_in_model_dtypes(table, at, numeric, text)
    frame = pd.DataFrame(block.T, columns=numeric, index=entity_df.index, copy=False)
    for position, column in enumerate(entity_df.columns):
        frame.insert(position, column, entity_df[column])
    for position, name in enumerate(names, start=len(entity_df.columns)):
        if name in strings:
            frame.insert(position, name, values[name])
    return frame


def _as_utc(column: pd.Series) -> pd.Series:
    column = pd.to_datetime(column)
    return column.dt.tz_localize("UTC") if column.dt.tz is None else column.dt.tz_convert("UTC")
