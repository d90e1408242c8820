"""Is each champion still fit for use? Stability and back-testing against its training population.

For a snapshot ``S`` (default: the latest, the month start after the data) and every model with a
champion:

- **stability**: the champion's eligible population at ``S`` is scored and compared with the
  training population logged with the model (:mod:`training.stability`): PSI of the score, CSI and
  missing rate of every input;
- **back-testing**: every snapshot after the champion's test snapshot whose outcome window has
  closed by ``S`` is labelled from the raw tables and scored: realised against predicted event
  rate overall and per rating grade (PD, with the Jeffreys test; :mod:`training.backtest`) or
  per score decile, AUC and KS over time.

Red findings (a red score PSI, a missing rate that rose by more than ``max_missing_change``, a
grade whose Jeffreys p-value is below ``pvalue_red``, an AUC more than ``max_auc_drop`` below the
champion's test AUC) become alerts; a red input CSI is reported but alerts only with
``fail_on_input_csi``: inputs drift with the calendar (12-month windows filling up, customers
ageing) without the model's output moving, and the score PSI and back-tests say whether it does.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from crmscore.settings import get_settings
from models import MODELS, get_definition
from training import metrics
from training.backtest import grade_backtest
from training.dataset import ENTITY, feast_training_set, fetch_features
from training.document import FACTS, master_scale_of
from training.labels import build_labels, observation_end
from training.master_scale import MasterScale
from training.pipeline import REFERENCE_ARTIFACT
from training.registry import LoadedModel, configure_mlflow, load_champion
from training.stability import StabilityReference


@dataclass
class Backtest:
    """One closed snapshot: what the champion predicted and what happened."""

    snapshot: date
    rows: int
    events: int
    predicted_rate: float
    realised_rate: float
    auc: float
    ks: float
    #: Per rating grade (PD models: :func:`training.backtest.grade_backtest`) or per decile.
    table: pd.DataFrame
    status: str  # green / amber / red


@dataclass
class ModelMonitoring:
    """One champion at one snapshot."""

    model: str
    champion: LoadedModel
    snapshot: date
    test_snapshot: date
    test_auc: float
    rows: int
    stability: pd.DataFrame
    backtests: list[Backtest] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Red with an alert; amber when the score's PSI is amber (the population is moving: worth
        a look, no alert); else green. Inputs' CSI alone never make it amber (they drift with the
        calendar, see ``monitoring.fail_on_input_csi``), nor does one amber back-test grade: a
        model back-tested over 6 snapshots of 10 grades meets a 5 % amber by chance."""
        if self.alerts:
            return "red"
        return "amber" if self.stability.iloc[0]["band"] == "amber" else "green"


@dataclass
class MonitoringReport:
    snapshot: date
    models: list[ModelMonitoring]
    #: Models that could not be monitored, and why (no champion, no stability reference).
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def alerts(self) -> list[str]:
        return [alert for m in self.models for alert in m.alerts]

    @property
    def status(self) -> str:
        """The worst of the models' statuses."""
        statuses = {m.status for m in self.models}
        return next((s for s in ("red", "amber") if s in statuses), "green")


def latest_snapshot(raw_dir: Path | None = None) -> date:
    """The month start after the data: its features see every row there is."""
    return observation_end(raw_dir)


def _month(value: str | date) -> date:
    day = pd.Timestamp(value)
    if day != day.normalize() or day.day != 1:
        raise ValueError(f"a snapshot is a month start (YYYY-MM-01), got {value!r}")
    return day.date()


def scored_population(
    champion: LoadedModel, snapshots: list[date], horizon_months: int, raw_dir: Path
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The champion's eligible rows at ``snapshots`` with their labels over ``horizon_months``
    (0: the population alone), the model's input matrix and its probabilities."""
    config = get_settings().training
    # A zero horizon labels nobody (the window [s, s) is empty) and keeps the population.
    definition = replace(get_definition(champion.name), horizon_months=horizon_months)
    labels = build_labels(definition, snapshots, raw_dir, config.max_rows)
    entities = labels[ENTITY].drop_duplicates().reset_index(drop=True)
    features = fetch_features(
        entities, definition.feature_service, feast_training_set(), config.fetch_rows
    )
    frame = labels.merge(features, on=ENTITY, how="left", validate="many_to_one")
    matrix = champion.prepare(frame)
    return frame, matrix, champion.predict_proba(frame)


def _artifact_json(client, run_id: str, path: str) -> dict | None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    folder = str(Path(path).parent)
    if path not in {a.path for a in client.list_artifacts(run_id, folder)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(run_id, path, tmp)).read_text())


def stability_alerts(name: str, snapshot: date, stability: pd.DataFrame) -> list[str]:
    """Red findings in a :meth:`StabilityReference.compare` table (see the module docstring)."""
    config = get_settings().monitoring
    score, inputs = stability.iloc[0], stability.iloc[1:]
    alerts = []
    if score["band"] == "red":
        alerts.append(
            f"{name}: score PSI {score['index']:.3f} at {snapshot} against the training "
            f"population (red from {config.psi_red})"
        )
    moved = inputs[inputs["missing_change"] > config.max_missing_change]
    alerts += [
        f"{name}: {row.column} missing in {row.missing_actual:.1%} of rows at {snapshot}, "
        f"{row.missing_reference:.1%} in training (rise above {config.max_missing_change:.0%})"
        for row in moved.itertuples()
    ]
    if config.fail_on_input_csi:
        alerts += [
            f"{name}: {row.column} CSI {row.index:.3f} at {snapshot} (red)"
            for row in inputs[inputs["band"] == "red"].itertuples()
        ]
    return alerts


def auc_alerts(name: str, snapshot: date, auc: float, test_auc: float) -> list[str]:
    """An AUC more than ``monitoring.max_auc_drop`` below the champion's test AUC is red."""
    drop = get_settings().monitoring.max_auc_drop
    if auc == auc and auc < test_auc - drop:
        return [
            f"{name}: back-test {snapshot}: AUC {auc:.3f}, more than {drop} below the "
            f"champion's test AUC {test_auc:.3f}"
        ]
    return []


def backtest(
    champion: LoadedModel, snapshot: date, scale: MasterScale | None, test_auc: float, raw_dir
) -> tuple[Backtest, list[str]]:
    """Label, score and grade one closed snapshot; the alerts it raises."""
    definition = get_definition(champion.name)
    frame, _, probability = scored_population(
        champion, [snapshot], definition.horizon_months, raw_dir
    )
    y = frame["label"].to_numpy(dtype=float)
    auc, ks = metrics.roc_auc(y, probability), metrics.ks_statistic(y, probability)
    alerts = []
    if scale is not None:
        table = grade_backtest(y, probability, scale)
        for row in table[table["status"] == "red"].itertuples():
            where = "all grades" if row.grade == "all" else f"grade {row.grade}"
            alerts.append(
                f"{champion.name}: back-test {snapshot}, {where}: {row.defaults} "
                f"defaults in {row.customers} ({row.realised_rate:.2%}) against a mean PD of "
                f"{row.mean_pd:.2%} (Jeffreys p = {row.jeffreys_pvalue:.2g})"
            )
    else:
        table = metrics.calibration_table(y, probability)
    alerts += auc_alerts(champion.name, snapshot, auc, test_auc)
    amber = scale is not None and (table["status"] == "amber").any()
    result = Backtest(
        snapshot=snapshot,
        rows=len(y),
        events=int(y.sum()),
        predicted_rate=float(probability.mean()) if len(y) else float("nan"),
        realised_rate=float(y.mean()) if len(y) else float("nan"),
        auc=auc,
        ks=ks,
        table=table,
        status="red" if alerts else "amber" if amber else "green",
    )
    return result, alerts


def monitor_model(client, name: str, snapshot: date, raw_dir: Path) -> ModelMonitoring | str:
    """Monitoring of ``name``'s champion at ``snapshot``, or the reason it cannot be done."""
    try:
        champion = load_champion(name)
    except LookupError:
        return "no champion"
    reference = _artifact_json(client, champion.run_id, REFERENCE_ARTIFACT)
    facts = _artifact_json(client, champion.run_id, FACTS)
    if reference is None or facts is None:
        return f"champion v{champion.version} has no training reference: retrain it"
    frame, matrix, score = scored_population(champion, [snapshot], 0, raw_dir)
    stability = StabilityReference.from_dict(reference).compare(matrix, score)
    run_metrics = client.get_run(champion.run_id).data.metrics
    result = ModelMonitoring(
        model=name,
        champion=champion,
        snapshot=snapshot,
        test_snapshot=_month(facts["snapshots"]["test"]),
        test_auc=float(run_metrics.get("test_auc", float("nan"))),
        rows=len(frame),
        stability=stability,
        alerts=stability_alerts(name, snapshot, stability),
    )
    scale = master_scale_of(facts)
    horizon = pd.DateOffset(months=int(facts["horizon_months"]))
    closed = pd.date_range(pd.Timestamp(result.test_snapshot) + pd.DateOffset(months=1),
                           pd.Timestamp(snapshot) - horizon, freq="MS")  # fmt: skip
    for day in closed:
        outcome, alerts = backtest(champion, day.date(), scale, result.test_auc, raw_dir)
        result.backtests.append(outcome)
        result.alerts += alerts
    return result


def monitor(
    snapshot: str | date | None = None, models: list[str] | None = None
) -> MonitoringReport:
    """Monitor every champion (or ``models``) at ``snapshot`` (default: the latest)."""
    raw_dir = get_settings().raw_dir
    latest = latest_snapshot(raw_dir)
    day = latest if snapshot is None else _month(snapshot)
    if day > latest:
        raise ValueError(f"snapshot {day} is after the data: the latest snapshot is {latest}")
    client = configure_mlflow()
    report = MonitoringReport(snapshot=day, models=[])
    for name in models or list(MODELS):
        outcome = monitor_model(client, name, day, raw_dir)
        if isinstance(outcome, str):
            report.skipped[name] = outcome
        else:
            report.models.append(outcome)
    return report
