"""MLflow tracking and registry: where runs go, how champions move, how serving loads them.

Registered models are named ``<prefix><model>`` (``crmscore-churn``, ``crmscore-cross_sell``,
``crmscore-credit_risk``); every trained version is registered, and the alias ``champion`` points at
the one serving should use. :func:`load_champion` is the only thing serving needs from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmscore.settings import get_settings
from training.scoring_model import ScoringModel


def registered_name(model: str) -> str:
    """``churn`` -> ``crmscore-churn`` (names that already carry the prefix pass through)."""
    prefix = get_settings().training.name_prefix
    return model if model.startswith(prefix) else f"{prefix}{model}"


def _artifact_location(tracking_uri: str) -> str | None:
    """Local databases keep artifacts beside them; servers choose their own store."""
    root = get_settings().training.artifact_root
    if root:
        return root if "://" in root else Path(root).resolve().as_uri()
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        return None  # a file store keeps artifacts inside itself
    return None


def configure_mlflow():
    """Point MLflow at the configured tracking + registry URI; return an ``MlflowClient``."""
    import mlflow
    from mlflow import MlflowClient

    uri = get_settings().training.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register_version(name: str, model_uri: str, model_id: str | None = None) -> str:
    """Register a logged model as a new version of ``name`` (created on first use); its number.

    What ``log_model(registered_model_name=...)`` does, minus the two lines MLflow prints to
    stderr for every version ("Successfully registered model", "Created version"): the training
    command reports the version itself."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    client = MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    return str(client.create_model_version(name, source=model_uri, model_id=model_id).version)


def ensure_experiment(client, name: str) -> str:
    """The id of experiment ``name``, created (with a local artifact root) if needed.

    Every experiment is created here: MLflow's own ``create_experiment`` leaves the artifacts of
    a local database's runs in ``./mlruns`` of whatever folder the command ran in."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    location = _artifact_location(get_settings().training.tracking_uri)
    return client.create_experiment(name, artifact_location=location)


#: What the registry answers for a model it does not hold or an alias it has not set.
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def current_champion(client, model: str):
    """The ``ModelVersion`` the champion alias points at, or ``None`` when the registry says
    there is none. Any other failure (the registry down, a reset connection) is raised: read as
    "no champion", it promoted a new version without comparing it and sent serving's 503 users
    to `crmscore train`."""
    from mlflow.exceptions import MlflowException

    alias = get_settings().training.champion_alias
    try:
        return client.get_model_version_by_alias(registered_name(model), alias)
    except MlflowException as error:
        if error.error_code in _NOT_FOUND:
            return None
        raise


def load_scoring_model(model_uri: str) -> ScoringModel:
    """The :class:`ScoringModel` inside a logged pyfunc (``models:/...`` or ``runs:/...``)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().scoring_model


@dataclass
class LoadedModel:
    """A champion as serving sees it.

    ``predict_proba(frame)`` -> event probabilities (calibrated PD for credit_risk), one per row of
    ``frame``, which must hold the columns in ``features`` (extra columns are ignored; categoricals
    as strings). ``score(frame)`` adds ``points`` for scorecard models. ``booster`` is the LightGBM
    booster for ``shap.TreeExplainer(booster)``; explain ``prepare(frame)`` with it.
    """

    name: str
    registered_name: str
    version: str
    run_id: str
    scoring_model: ScoringModel
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return list(self.scoring_model.features)

    @property
    def categories(self) -> dict[str, list[str]]:
        return dict(self.scoring_model.categories)

    @property
    def booster(self) -> Any:
        return self.scoring_model.booster

    @property
    def has_scorecard(self) -> bool:
        return self.scoring_model.scorecard is not None

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input matrix (feature order, categorical levels) for ``frame``."""
        return self.scoring_model.prepare(frame)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.scoring_model.predict_proba(frame)

    def points(self, probability: np.ndarray) -> np.ndarray | None:
        return self.scoring_model.points(probability)

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.scoring_model.score_frame(frame)


def load_champion(model_name: str) -> LoadedModel:
    """Load the current champion of ``model_name`` ("churn", "cross_sell", "credit_risk", or the
    registered name) from the configured registry. Raises ``LookupError`` if none is registered."""
    client = configure_mlflow()
    version = current_champion(client, model_name)
    if version is None:
        raise LookupError(
            f"no '{get_settings().training.champion_alias}' for {registered_name(model_name)} in "
            f"{get_settings().training.tracking_uri}: run `crmscore train {model_name}` first"
        )
    scoring_model = load_scoring_model(f"models:/{version.name}/{version.version}")
    return LoadedModel(
        name=scoring_model.name,
        registered_name=version.name,
        version=str(version.version),
        run_id=version.run_id,
        scoring_model=scoring_model,
        tags=dict(version.tags),
    )
