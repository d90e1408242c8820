"""Labelled training sets: point-in-time labels joined to features served by Feast.

Labels come from the raw tables (:mod:`training.labels`); features come only through the feature
store's contract ``get_training_set(entity_df, service)``, so training sees exactly what serving
will see. The snapshots to use are the fully labelled month starts after a warm-up period.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from crmscore.settings import get_settings
from models.definition import ModelDefinition
from training.labels import (
    LabelSource,
    build_labels,
    case_months,
    fully_labelled,
    observation_end,
    observation_start,
)
from training.split import ROLES, OutOfTimeSplit

ENTITY = ["customer_id", "event_timestamp"]
#: ``(entity_df, feature_service) -> entity_df + features``: the feature store's contract.
TrainingSetSource = Callable[[pd.DataFrame, str], pd.DataFrame]


def drawn(frame: pd.DataFrame, at_most: int) -> pd.DataFrame:
    """``frame``, or ``at_most`` of its rows drawn at random (``training.seed``) when it is
    longer: what a step needs of a big training set (the baseline, the challenger, the stability
    reference, the SHAP plot) without the cost of every row."""
    if len(frame) <= at_most:
        return frame
    return frame.sample(at_most, random_state=get_settings().training.seed)


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


def candidate_snapshots(
    horizon_months: int, warmup_months: int, raw_dir: Path, source: LabelSource | None = None
) -> list[date]:
    """Month starts after ``warmup_months`` of history whose label window ends inside the data;
    for decided cases, the months holding cases (after the warm-up too: a case needs history)."""
    start = pd.Timestamp(observation_start(raw_dir)) + pd.DateOffset(months=warmup_months)
    if source is not None and source.kind == "cases":
        return [m for m in case_months(raw_dir, source.outcome) if pd.Timestamp(m) >= start]
    end = observation_end(raw_dir)
    months = [m.date() for m in pd.date_range(start, pd.Timestamp(end), freq="MS")]
    return fully_labelled(months, horizon_months, end)


@dataclass
class TrainingSet:
    """Labelled rows of every split role, and which columns are model inputs."""

    frame: pd.DataFrame  # labels + features + ``role`` (train / valid / test)
    features: list[str]
    categorical: list[str]
    #: Share of the eligible customers kept (``training.max_rows``); 1.0 = all of them.
    customer_share: float = 1.0

    def part(self, *roles: str) -> pd.DataFrame:
        """The rows of ``roles``, in frame order: a slice of the frame (no copy) when they are
        consecutive, as :func:`in_role_order` leaves them. At a million customers each copy of
        the training rows is gigabytes."""
        rows = np.flatnonzero(self.frame["role"].isin(roles).to_numpy())
        if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
            return self.frame.iloc[rows[0] : rows[-1] + 1]
        return self.frame.iloc[rows]


def in_role_order(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` ordered train, valid, test (each role's rows in their order before), so that
    :meth:`TrainingSet.part` is a slice: the same rows in the same order as a selection gives."""
    rank = rows["role"].map({role: i for i, role in enumerate(ROLES)}).to_numpy()
    order = np.argsort(rank, kind="stable")
    return rows.iloc[order] if (np.diff(order) < 0).any() else rows


def fetch_features(
    entities: pd.DataFrame, service: str, source: TrainingSetSource, chunk_rows: int
) -> pd.DataFrame:
    """Point-in-time features for ``entities`` (``customer_id``, ``event_timestamp``), fetched
    ``chunk_rows`` at a time and kept as float32: the join's working memory stays bounded and the
    result takes half the memory of float64 (the scoring model computes in float32 anyway).

    Each chunk is given its final types as it arrives, so the whole result is never copied."""
    chunks = []
    for start in range(0, len(entities), chunk_rows) or [0]:  # one (empty) call for no rows
        chunk = source(entities.iloc[start : start + chunk_rows].reset_index(drop=True), service)
        lacking = [c for c in ENTITY if c not in chunk.columns]
        if lacking:
            raise ValueError(f"feature service '{service}' returned no {lacking} column(s)")
        chunks.append(_compact(chunk))
    features = pd.concat(chunks, ignore_index=True)
    del chunks
    duplicated = features.duplicated(ENTITY)
    return features[~duplicated].reset_index(drop=True) if duplicated.any() else features


def _compact(chunk: pd.DataFrame) -> pd.DataFrame:
    """A fetched chunk in the training set's types: float32 features, int64 ids, naive stamps."""
    floats = chunk.select_dtypes("float64").columns
    chunk = chunk.astype({**dict.fromkeys(floats, "float32"), "customer_id": "int64"})
    timestamps = pd.to_datetime(chunk["event_timestamp"])
    if timestamps.dt.tz is not None:
        timestamps = timestamps.dt.tz_localize(None)
    chunk["event_timestamp"] = timestamps.astype("datetime64[ns]")
    return chunk


def labelled_rows(
    definition: ModelDefinition,
    split: OutOfTimeSplit,
    raw_dir: Path,
    source: LabelSource | None = None,
) -> pd.DataFrame:
    """Labels for the split's snapshots (at most ``training.max_rows``: a hash sample of
    customers above it), each with its ``role`` in ``split``."""
    snapshots = [*split.train, *split.valid, split.test]
    labels = build_labels(definition, snapshots, raw_dir, get_settings().training.max_rows, source)
    labels["role"] = split.roles(labels)
    return labels


def assemble_training_set(
    definition: ModelDefinition,
    split: OutOfTimeSplit,
    labels: pd.DataFrame,
    features_from: TrainingSetSource,
) -> TrainingSet:
    """``labels`` (with their roles in ``split``) joined to the definition's Feast feature
    service, fetched in chunks of ``training.fetch_rows`` entity rows.

    Rows no role uses are not fetched. Out of time, the rows are put in role order before the
    join, so that the parts are slices of one frame (see :meth:`TrainingSet.part`) without
    reordering a frame of features. Cross-validation keeps the labels' order: its folds and
    LightGBM's bagging follow it.
    """
    share = labels.attrs.get("customer_share", 1.0)
    labels = labels[labels["role"] != "unused"]
    if not split.cross_validated:
        labels = in_role_order(labels)
    labels = labels.reset_index(drop=True)
    # Each label row's entity, numbered in order of first appearance: the entities to fetch.
    entity_of = labels.groupby(ENTITY, sort=False).ngroup().to_numpy()
    entities = labels.loc[~labels.duplicated(ENTITY), ENTITY].reset_index(drop=True)
    features = fetch_features(
        entities, definition.feature_service, features_from, get_settings().training.fetch_rows
    )
    frame = _with_labels(features, entities, labels, entity_of)
    del features
    feature_columns = [c for c in frame.columns if c not in labels.columns]
    if not feature_columns:
        raise ValueError(f"feature service '{definition.feature_service}' returned no features")
    inputs = [*definition.key_features, *feature_columns]
    categorical = [
        c
        for c in inputs
        if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
    return TrainingSet(frame, inputs, categorical, customer_share=share)


def _with_labels(
    features: pd.DataFrame, entities: pd.DataFrame, labels: pd.DataFrame, entity_of: np.ndarray
) -> pd.DataFrame:
    """The labels' rows with their entity's features. The fetched frame (one row per entity, in
    ``entities``' order) takes the label columns itself, so where each entity has one label row
    (churn, credit risk) the features are not copied, and where it has several (cross-sell: one
    per product) they are taken once. A merge would hold both frames and its result at once."""
    if len(features) != len(entities) or not features[ENTITY].equals(entities):
        # A source that reorders or drops rows: join on the keys instead.
        return labels.merge(features, on=ENTITY, how="left", validate="many_to_one")
    if len(entity_of) != len(features):
        features = features.take(entity_of).reset_index(drop=True)
    # The fetched frame holds a block per column (Feast's chunks), so pandas warns that adding
    # more is slow; for these few columns it is not, and consolidating would copy the features.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for column in labels.columns.difference(ENTITY, sort=False):
            features[column] = labels[column].to_numpy()
    return features
