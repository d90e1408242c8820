"""``crmscore monitor`` end to end: two banks that share their first two years, one of which goes
through an economic shock afterwards; a credit-risk champion trained on the calm bank as of the
end of those two years (the shock is a credit shock: the PD's back-test is what it must trip).

Without the shock every check stays green (exit 0); with it the per-grade back-test of the PD
turns red (exit 1, with the reasons): defaults rise beyond what the inputs show, so the score
itself barely moves and only the back-test can tell. Real stack:
generated raw tables, DuckDB features in Feast, the MLflow registry and the champions' logged
training references.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmscore.cli import app
from crmscore.settings import get_settings
from crmscore.synthetic import EconomicShock
from tests.stacks import built_stack, stack_env

FAST = {"n_estimators": 300, "learning_rate": 0.1, "early_stopping_rounds": 20}
#: Two years of history the champions are trained on; the banks run six months past it.
TRAINED_AS_OF = date(2026, 1, 1)
MONTHS = 30
CUSTOMERS = 1500
SEED = 4
#: Credit risk's test snapshot at training is 2025-01; by 2026-07 the 12-month windows of
#: 2025-02 .. 2025-07 have closed: the back-tested snapshots, as MLflow steps.
CREDIT_STEPS = [202502, 202503, 202504, 202505, 202506, 202507]


@pytest.fixture(scope="module")
def calm_bank(tmp_path_factory):
    """The calm bank, with a credit-risk champion trained as of TRAINED_AS_OF."""
    from training.pipeline import train_model

    root = tmp_path_factory.mktemp("monitoring-calm")
    env = stack_env(root, CRMSCORE_TRAINING__SHAP_ROWS="200")
    with built_stack(root, env, customers=CUSTOMERS, seed=SEED, months=MONTHS):
        train_model("credit_risk", lgbm_overrides=FAST, as_of=TRAINED_AS_OF)
        yield env


def run_monitor(report: Path):
    """``crmscore monitor`` as a scheduler runs it, and the MLflow run it logged."""
    from mlflow import MlflowClient

    result = CliRunner().invoke(app, ["monitor", "--out", str(report)])
    client = MlflowClient(get_settings().training.tracking_uri)
    experiment = client.get_experiment_by_name(get_settings().monitoring.experiment)
    run = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    return result, client, run


def test_a_calm_economy_stays_green(calm_bank, tmp_path):
    result, client, run = run_monitor(tmp_path / "report.html")
    assert result.exit_code == 0, result.output
    assert "credit_risk v1: green" in result.output
    assert "churn: not monitored (no champion)" in result.output
    assert run.data.tags["status"] == "green"
    assert run.data.metrics["credit_risk.psi_score"] < 0.10
    history = client.get_metric_history(run.info.run_id, "credit_risk.backtest_auc")
    assert [m.step for m in history] == CREDIT_STEPS
    html = (tmp_path / "report.html").read_text()
    assert "No red threshold crossed." in html and "Jeffreys" not in result.output


def test_the_report_is_kept_beside_the_registry_wherever_the_command_runs(
    calm_bank, tmp_path, monkeypatch
):
    """A scheduler runs ``crmscore monitor`` from any folder: the run's artefacts (the report, the
    alerts) go beside the local database, as the models' do, not into ``./mlruns`` there."""
    elsewhere = tmp_path / "cron"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result, client, run = run_monitor(tmp_path / "report.html")
    assert result.exit_code == 0, result.output
    database = Path(calm_bank["CRMSCORE_TRAINING__TRACKING_URI"].removeprefix("sqlite:///"))
    kept = Path(run.info.artifact_uri.removeprefix("file://"))
    assert kept.is_relative_to(database.parent / "artifacts"), run.info.artifact_uri
    (page,) = [a.path for a in client.list_artifacts(run.info.run_id) if a.path.endswith(".html")]
    assert (kept / page).is_file()
    assert list(elsewhere.iterdir()) == []


def test_an_economic_shock_turns_monitoring_red(calm_bank, tmp_path):
    root = tmp_path / "shocked"
    # Same bank, same seed, a downturn from the day the champions' data ends; their registry.
    env = {**stack_env(root), "CRMSCORE_TRAINING__TRACKING_URI": calm_bank[
        "CRMSCORE_TRAINING__TRACKING_URI"]}  # fmt: skip
    shock = EconomicShock(str(TRAINED_AS_OF))
    with built_stack(root, env, customers=CUSTOMERS, seed=SEED, months=MONTHS, shock=shock):
        result, client, run = run_monitor(tmp_path / "report.html")
    assert result.exit_code == 1
    assert "RED at 2026-07-01" in result.output and "credit_risk v1: red" in result.output
    assert run.data.tags["status"] == "red"
    assert "Jeffreys p =" in result.output  # realised defaults above the PD in some grade
    history = client.get_metric_history(run.info.run_id, "credit_risk.backtest_realised_rate")
    realised = [m.value for m in history]
    assert realised[-1] > 1.5 * realised[0]  # the last window holds six months of the shock
    html = (tmp_path / "report.html").read_text()
    assert "Alerts (red)" in html
