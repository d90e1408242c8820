"""Online feature vectors for serving, from the online store (SQLite or Redis)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.catalog import categorical_features, feature_names
from features.definitions import JOIN_KEY

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore


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
    values = store.get_online_features(
        features=_feature_service(store, service),
        entity_rows=[{JOIN_KEY: i} for i in ids],
    ).to_dict()
    categorical = set(categorical_features(service))
    # Built column by column from plain lists: per-request pandas conversions would cost more
    # than the online read itself.
    columns: dict[str, object] = {JOIN_KEY: np.asarray(ids, dtype="int64")}
    for name in feature_names(service):
        column = values[name]
        columns[name] = (
            np.asarray(column, dtype=object)
            if name in categorical
            else np.asarray(column, dtype="float64")
        )
    return pd.DataFrame(columns)


def unknown_customers(frame: pd.DataFrame) -> list[int]:
    """Ids in an :func:`get_online_features` result for which the online store had nothing."""
    features = frame.drop(columns=[JOIN_KEY])
    return frame.loc[features.isna().all(axis=1), JOIN_KEY].astype(int).tolist()


@lru_cache(maxsize=32)
def _feature_service(store: FeatureStore, service: str) -> FeatureService:
    """The registered service object, kept: Feast caches request plans per service object, and
    decoding it from the registry costs more than an online read."""
    return store.get_feature_service(service)
