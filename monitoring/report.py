"""The monitoring report (one self-contained HTML page) and its MLflow run.

Metrics go to the ``monitoring.experiment`` experiment, one run per ``crmscore monitor``:
``<model>.psi_score``, ``<model>.csi_max``, ``<model>.inputs_red``, and per back-tested snapshot
``<model>.backtest_auc`` / ``_ks`` / ``_realised_rate`` / ``_predicted_rate`` with the snapshot as
the step (``YYYYMM``), so MLflow draws AUC and KS over time. The report is logged to the same run.
"""

from __future__ import annotations

import pandas as pd

from crmscore.settings import get_settings
from monitoring.monitor import ModelMonitoring, MonitoringReport
from training import html_page as h

TOP_INPUTS = 20


def _overview(report: MonitoringReport) -> str:
    rows = [
        {
            "model": f"{m.champion.registered_name} v{m.champion.version}",
            "status": m.status,
            "rows at snapshot": m.rows,
            "score PSI": m.stability.iloc[0]["index"],
            "inputs red": int((m.stability.iloc[1:]["band"] == "red").sum()),
            "back-tested snapshots": len(m.backtests),
            "alerts": len(m.alerts),
        }
        for m in report.models
    ]
    body = h.table(pd.DataFrame(rows), {"status": h.status, "score PSI": h.number(3)})
    if report.alerts:
        body += "<h3>Alerts (red)</h3><ul>"
        body += "".join(f"<li>{h.escape(a)}</li>" for a in report.alerts) + "</ul>"
    else:
        body += h.paragraph("No red threshold crossed.", "verdict")
    for name, reason in report.skipped.items():
        body += h.paragraph(f"{name}: not monitored ({reason}).")
    return body


def _model_section(m: ModelMonitoring) -> str:
    from training import plots

    config = get_settings().monitoring
    stability = m.stability
    body = h.paragraph(
        f"Champion trained with test snapshot {m.test_snapshot} (test AUC {m.test_auc:.3f}); "
        f"population at {m.snapshot}: {m.rows:,} rows. Bands: < {config.psi_amber} green, "
        f"{config.psi_amber}–{config.psi_red} amber, ≥ {config.psi_red} red.",
        "meta",
    )
    body += f"<h3>Stability: score and the {TOP_INPUTS} inputs that moved most</h3>"
    body += h.table(
        stability.head(TOP_INPUTS + 1),
        {
            "index": h.number(3),
            "band": h.status,
            "missing_reference": h.percent(1),
            "missing_actual": h.percent(1),
            "missing_change": h.percent(1),
        },
    )
    moved = stability[stability["missing_change"].abs() > config.max_missing_change]
    if len(moved):
        body += h.paragraph(
            f"Missing rates that moved by more than {config.max_missing_change:.0%} (red when "
            f"they rise): {', '.join(moved['column'])}."
        )
    if not m.backtests:
        return body + h.paragraph(
            "Back-testing: no snapshot after the test snapshot has a closed outcome window yet."
        )
    series = pd.DataFrame(
        [
            {
                "snapshot": str(b.snapshot),
                "rows": b.rows,
                "events": b.events,
                "predicted rate": b.predicted_rate,
                "realised rate": b.realised_rate,
                "AUC": b.auc,
                "KS": b.ks,
                "status": b.status,
            }
            for b in m.backtests
        ]
    )
    body += "<h3>Back-testing: every snapshot whose outcome window has closed</h3>"
    body += h.table(
        series,
        {
            "predicted rate": h.percent(2),
            "realised rate": h.percent(2),
            "AUC": h.number(3),
            "KS": h.number(3),
            "status": h.status,
        },
    )
    body += h.figure(plots.series_figure(series, m.test_auc, m.model), "AUC and KS over time")
    latest = m.backtests[-1]
    label = "rating grade" if "grade" in latest.table.columns else "score decile"
    body += f"<h3>Realised against predicted by {label}, {latest.snapshot}</h3>"
    return body + h.table(
        latest.table,
        {
            c: h.percent(2)
            for c in (
                "pd_from",
                "pd_to",
                "mean_pd",
                "realised_rate",
                "mean_predicted",
                "observed_rate",
            )  # fmt: skip
        }
        | {"jeffreys_pvalue": h.number(3), "status": h.status},
    )


def render(report: MonitoringReport) -> str:
    """The report's HTML: an overview, then one section per monitored model."""
    sections = [("overview", "Overview", _overview(report))]
    sections += [(m.model, m.model, _model_section(m)) for m in report.models]
    return h.page(
        f"crmscore monitoring — {report.snapshot}",
        f"status: {report.status} · {len(report.alerts)} alert(s)",
        sections,
    )


def log_to_mlflow(report: MonitoringReport, html: str) -> str:
    """One run in the monitoring experiment; returns its id."""
    import mlflow

    from training.registry import configure_mlflow, ensure_experiment

    client = configure_mlflow()
    experiment_id = ensure_experiment(client, get_settings().monitoring.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor-{report.snapshot}"):
        mlflow.set_tags({"snapshot": str(report.snapshot), "status": report.status})
        for m in report.models:
            inputs = m.stability.iloc[1:]
            mlflow.set_tag(
                f"{m.model}.champion", f"{m.champion.registered_name}/{m.champion.version}"
            )
            mlflow.log_metrics(
                {
                    f"{m.model}.psi_score": float(m.stability.iloc[0]["index"]),
                    f"{m.model}.csi_max": float(inputs["index"].max()),
                    f"{m.model}.inputs_red": float((inputs["band"] == "red").sum()),
                    f"{m.model}.alerts": float(len(m.alerts)),
                }
            )
            for b in m.backtests:
                step = b.snapshot.year * 100 + b.snapshot.month
                values = {"auc": b.auc, "ks": b.ks, "realised_rate": b.realised_rate,
                          "predicted_rate": b.predicted_rate}  # fmt: skip
                for key, value in values.items():
                    if value == value:
                        mlflow.log_metric(f"{m.model}.backtest_{key}", value, step=step)
        if report.alerts:
            mlflow.log_text("\n".join(report.alerts), "alerts.txt")
        mlflow.log_text(html, f"monitoring_{report.snapshot}.html")
        return mlflow.active_run().info.run_id
