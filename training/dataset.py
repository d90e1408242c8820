"""Labelled training sets: point-in-time labels joined to features served by Feast.

Labels come from the raw tables (:mod:`training.labels`); features come only through the feature
store's contract ``get_training_set(entity_df, service)``, so training sees exactly what serving
will see. The snapshots to use are the fully labelled month starts after a warm-up period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from models.definition import ModelDefinition
from training.labels import build_labels, fully_labelled, observation_end, observation_start
from training.split import OutOfTimeSplit

ENTITY = ["customer_id", "event_timestamp"]
#: ``(entity_df, feature_service) -> entity_df + features``: the feature store's contract.
TrainingSetSource = Callable[[pd.DataFrame, str], pd.DataFrame]


def feast_training_set() -> TrainingSetSource:
    """The feature store's point-in-time retrieval, with a clear error when it is missing."""
    try:
        from features.training_set import get_training_set
    except ImportError as exc:
        raise RuntimeError(
            "the feature store is not available (features.training_set could not be imported: "
            f"{exc}); build it before training"
        ) from exc
    return get_training_set


def candidate_snapshots(horizon_months: int, warmup_months: int, raw_dir: Path) -> list[date]:
    """Month starts after ``warmup_months`` of history whose label window ends inside the data."""
    start = pd.Timestamp(observation_start(raw_dir)) + pd.DateOffset(months=warmup_months)
    end = observation_end(raw_dir)
    months = [m.date() for m in pd.date_range(start, pd.Timestamp(end), freq="MS")]
    return fully_labelled(months, horizon_months, end)


@dataclass
class TrainingSet:
    """Labelled rows of every split role, and which columns are model inputs."""

    frame: pd.DataFrame  # labels + features + ``role`` (train / valid / test)
    features: list[str]
    categorical: list[str]

    def part(self, role: str) -> pd.DataFrame:
        return self.frame[self.frame["role"] == role]


def assemble_training_set(
    definition: ModelDefinition,
    split: OutOfTimeSplit,
    raw_dir: Path,
    source: TrainingSetSource,
) -> TrainingSet:
    """Labels for the split's snapshots, joined to the definition's Feast feature service."""
    snapshots = [*split.train, *split.valid, split.test]
    labels = build_labels(definition.name, snapshots, raw_dir, definition.horizon_months)
    entities = labels[ENTITY].drop_duplicates().reset_index(drop=True)
    features = source(entities, definition.feature_service)
    lacking = [c for c in ENTITY if c not in features.columns]
    if lacking:
        raise ValueError(
            f"feature service '{definition.feature_service}' returned no {lacking} column(s)"
        )
    features = features.astype({"customer_id": "int64"})
    features["event_timestamp"] = pd.to_datetime(features["event_timestamp"]).dt.tz_localize(None)
    features["event_timestamp"] = features["event_timestamp"].astype("datetime64[ns]")
    features = features.drop_duplicates(ENTITY)
    frame = labels.merge(features, on=ENTITY, how="left", validate="many_to_one")
    feature_columns = [c for c in features.columns if c not in ENTITY]
    if not feature_columns:
        raise ValueError(f"feature service '{definition.feature_service}' returned no features")
    inputs = [*definition.key_features, *[c for c in feature_columns if c not in labels.columns]]
    categorical = [
        c
        for c in inputs
        if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
    frame["role"] = split.roles(frame)
    return TrainingSet(frame=frame, features=inputs, categorical=categorical)
