"""The red thresholds of ``crmscore monitor``, each on a hand-made finding."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from crmscore.settings import get_settings
from monitoring.monitor import auc_alerts, stability_alerts

DAY = date(2026, 7, 1)


def table(score_psi: float, rows: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    """A stability table: the score, then (column, CSI, missing in training, missing now)."""
    from training.stability import band

    records = [("score", score_psi, 0.0, 0.0), *rows]
    frame = pd.DataFrame(
        records, columns=["column", "index", "missing_reference", "missing_actual"]
    )
    frame["band"] = frame["index"].map(band)
    frame["missing_change"] = frame["missing_actual"] - frame["missing_reference"]
    return frame


def test_a_red_score_psi_alerts():
    assert stability_alerts("credit_risk", DAY, table(0.24, [])) == []
    (alert,) = stability_alerts("credit_risk", DAY, table(0.25, []))
    assert alert.startswith("credit_risk: score PSI 0.250 at 2026-07-01")


def test_a_missing_rate_that_rises_alerts_and_one_that_falls_does_not():
    rising = table(0.01, [("txn_salary_3m", 0.05, 0.02, 0.15)])
    (alert,) = stability_alerts("churn", DAY, rising)
    assert "txn_salary_3m missing in 15.0% of rows" in alert and "2.0% in training" in alert
    falling = table(0.01, [("int_days_since_complaint", 0.05, 0.70, 0.30)])
    assert stability_alerts("churn", DAY, falling) == []


def test_a_red_input_csi_alerts_only_when_configured(monkeypatch):
    drifted = table(0.01, [("txn_count_12m", 1.7, 0.0, 0.0)])
    assert stability_alerts("churn", DAY, drifted) == []
    monkeypatch.setenv("CRMSCORE_MONITORING__FAIL_ON_INPUT_CSI", "true")
    get_settings.cache_clear()
    try:
        (alert,) = stability_alerts("churn", DAY, drifted)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert alert == "churn: txn_count_12m CSI 1.700 at 2026-07-01 (red)"


@pytest.mark.parametrize("auc, alerts", [(0.86, 0), (0.851, 0), (0.849, 1), (float("nan"), 0)])
def test_an_auc_more_than_the_allowed_drop_below_the_test_auc_alerts(auc, alerts):
    assert len(auc_alerts("credit_risk", DAY, auc, test_auc=0.90)) == alerts


@pytest.mark.parametrize(
    ("score_psi", "backtest", "alerts", "status"),
    [
        (0.05, "green", [], "green"),  # stable score, back-test in line
        (0.18, "green", [], "amber"),  # the score's PSI between 0.10 and 0.25: worth a look
        (0.05, "amber", [], "green"),  # one grade at 5 %: expected by chance over many grades
        (0.05, "green", ["an alert"], "red"),  # any alert is red
    ],
)
def test_a_model_is_amber_when_its_score_psi_is(score_psi, backtest, alerts, status):
    """An amber PSI showed amber in the report's table while the model's status said green."""
    from types import SimpleNamespace

    from monitoring.monitor import ModelMonitoring, MonitoringReport

    found = ModelMonitoring(
        model="credit_risk",
        champion=None,
        snapshot=DAY,
        test_snapshot=DAY,
        test_auc=0.8,
        rows=100,
        stability=table(score_psi, [("txn_salary_3m", 0.30, 0.0, 0.0)]),  # a red input: no say
        backtests=[SimpleNamespace(status=backtest)],
        alerts=alerts,
    )
    assert found.status == status
    assert MonitoringReport(snapshot=DAY, models=[found]).status == status
