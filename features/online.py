"""Online feature vectors for serving, from the online store (SQLite or Redis)."""

from __future__ import annotations

import pandas as pd

from features.catalog import as_model_dtypes, feature_names
from features.definitions import JOIN_KEY


def get_online_features(customer_ids: list[int], service: str) -> pd.DataFrame:
    """One row per requested id (in request order): ``customer_id`` plus the service's features.

    Values are those of the latest materialised snapshot; dtypes follow
    :func:`features.catalog.as_model_dtypes` (numeric float64, categorical str), as in training
    sets. An id the online store does not know comes back with every feature null — check with
    :func:`unknown_customers`.
    """
    from features.store import get_store

    store = get_store()
    ids = [int(i) for i in customer_ids]
    response = store.get_online_features(
        features=store.get_feature_service(service),
        entity_rows=[{JOIN_KEY: i} for i in ids],
    )
    frame = response.to_df()
    columns = [JOIN_KEY, *feature_names(service)]
    frame = frame.reindex(columns=columns)
    frame[JOIN_KEY] = ids
    return as_model_dtypes(frame)


def unknown_customers(frame: pd.DataFrame) -> list[int]:
    """Ids in an :func:`get_online_features` result for which the online store had nothing."""
    features = frame.drop(columns=[JOIN_KEY])
    return frame.loc[features.isna().all(axis=1), JOIN_KEY].astype(int).tolist()
