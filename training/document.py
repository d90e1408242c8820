"""The model document: one self-contained HTML file per registered model version (SR 11-7 style).

Training logs what the document needs next to the model (:func:`log_document_inputs`: the facts
of the run, the test rows' scores, the importance, stability and challenger tables), then renders
the document from the run alone (:func:`document_html`) and logs it as ``model_document.html``.
``crmscore document MODEL --version V`` renders the same bytes later from the same run: nothing
is read from the data, the code's current definitions or the clock, and the bootstrap uses a
fixed seed.

Sections, in the order model validators read them: purpose and use; label, horizon and
population; data; code and packages; features; out-of-time performance with bootstrap intervals;
calibration by decile and by rating grade; stability; comparison with the benchmarks; promotion;
known limitations.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crmscore.settings import PROJECT_ROOT, get_settings
from training import html_page as h
from training import metrics
from training.backtest import grade_backtest
from training.master_scale import MasterScale

if TYPE_CHECKING:
    from training.pipeline import Evaluation, FittedModels, PreparedData

DOCUMENT_ARTIFACT = "model_document.html"
FACTS = "document/facts.json"
TEST_SCORES = "document/test_scores.parquet"
SHAP_PLOT = "plots/shap_summary.png"
TABLES = {
    "importance": "tables/feature_importance.json",
    "stability": "tables/stability_test.json",
    "points": "tables/scorecard_points.json",
}
#: Packages whose versions the document records (what a validator needs to rebuild the model).
PACKAGES = (
    "crmscore", "lightgbm", "scikit-learn", "optbinning", "mlflow", "feast", "duckdb", "pandas",
    "numpy", "scipy", "shap",
)  # fmt: skip
#: Score columns of the test rows, in the order the document compares them.
MODELS = {"champion": "LightGBM champion", "baseline": "logistic baseline",
          "challenger": "WoE scorecard challenger"}  # fmt: skip
#: Metrics with bootstrap intervals (Gini's interval follows from AUC's: Gini = 2 AUC - 1).
INTERVAL_METRICS = ("auc", "ks", "pr_auc", "brier")
TOP_CSI = 15


# --- at training: what the document needs, logged with the run --------------------------------


def environment() -> dict[str, Any]:
    """Git commit (and whether the tree had uncommitted changes), Python and package versions."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    def package(name: str) -> str:
        try:
            return installed_version(name)
        except PackageNotFoundError:
            return "not installed"

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit or "unknown (not a git checkout)",
        "git_uncommitted_changes": bool(status) if status is not None else None,
        "python": sys.version.split()[0],
        "packages": {name: package(name) for name in PACKAGES},
    }


def document_facts(prepared: PreparedData, fitted: FittedModels) -> dict[str, Any]:
    """The run's facts as the document states them (texts from the model definition, the data
    window, the split, the environment, the scales)."""
    from training.labels import observation_end, observation_start

    definition, split = prepared.definition, prepared.split
    scorecard = fitted.scoring_model.scorecard
    return {
        "model": definition.name,
        "description": definition.description,
        "intended_use": definition.intended_use,
        "label_definition": definition.label_definition,
        "population": definition.population_text,
        "limitations": list(definition.limitations),
        "horizon_months": definition.horizon_months,
        "feature_service": definition.feature_service,
        "data_window": [
            str(observation_start(prepared.raw_dir)),
            str(prepared.as_of or observation_end(prepared.raw_dir)),
        ],
        "snapshots": {
            "train": [str(s) for s in split.train],
            "valid": [str(s) for s in split.valid],
            "test": str(split.test),
            "gap_months": split.gap_months,
            "note": split.note,
            "holdout_share": split.holdout_share,
            "test_customers": "held-out group" if split.test_holdout_only else "all",
        },
        "rows": {
            "train": len(prepared.train),
            "valid": len(prepared.valid),
            "test": len(prepared.test),
            "customer_share": prepared.data.customer_share,
        },
        "environment": environment(),
        "scorecard": None
        if scorecard is None
        else {
            "base_points": scorecard.base_points,
            "base_odds": scorecard.base_odds,
            "points_to_double": scorecard.points_to_double,
        },
        "master_scale": None
        if scorecard is None
        else MasterScale.from_settings().table().to_dict("records"),
        "challenger_characteristics": None
        if fitted.challenger is None
        else fitted.challenger.characteristics,
    }


def scored_test_rows(prepared: PreparedData, evaluation: Evaluation) -> pd.DataFrame:
    """The test rows' label and every model's probability: the document's evidence."""
    scores = {"label": prepared.test["label"].to_numpy(dtype="int8"), "champion": evaluation.p_test}
    scores["baseline"] = evaluation.p_baseline
    if evaluation.p_challenger is not None:
        scores["challenger"] = evaluation.p_challenger
    return pd.DataFrame(scores)


def log_document_inputs(
    prepared: PreparedData, fitted: FittedModels, evaluation: Evaluation
) -> None:
    """Everything :func:`document_html` reads, into the active MLflow run."""
    import mlflow

    mlflow.log_dict(document_facts(prepared, fitted), FACTS)
    mlflow.log_table(evaluation.importance, TABLES["importance"])
    mlflow.log_table(evaluation.stability, TABLES["stability"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(TEST_SCORES).name
        scored_test_rows(prepared, evaluation).to_parquet(path, index=False)
        mlflow.log_artifact(str(path), str(Path(TEST_SCORES).parent))


# --- reading a run back -----------------------------------------------------------------------


@dataclass
class RunRecord:
    """What one training run logged, as the document reads it."""

    registered_name: str
    version: str
    run_id: str
    started: datetime
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    facts: dict[str, Any]
    inputs: dict[str, Any]  # model_inputs.json: features, categories, monotone
    scores: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    shap_png: bytes | None


def read_run(client, registered_name: str, version: str) -> RunRecord:
    """The run behind ``registered_name`` version ``version``, with its document inputs."""
    # MLflow draws a progress bar per downloaded file; a document reads a handful of small ones.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    model_version = client.get_model_version(registered_name, version)
    run = client.get_run(model_version.run_id)
    run_id = run.info.run_id
    logged = {a.path for folder in ("", "document", "tables", "plots")
              for a in client.list_artifacts(run_id, folder or None)}  # fmt: skip
    if FACTS not in logged:
        raise LookupError(
            f"{registered_name} version {version} (run {run_id}) has no model document inputs: "
            "it was trained before model documents existed; retrain it"
        )
    wanted = [FACTS, TEST_SCORES, "model_inputs.json", SHAP_PLOT, *TABLES.values()]
    with tempfile.TemporaryDirectory() as tmp:
        # One file at a time, only these: the logged models are large and not needed here.
        files = {
            path: Path(client.download_artifacts(run_id, path, tmp))
            for path in wanted
            if path in logged
        }
        return RunRecord(
            registered_name=registered_name,
            version=str(version),
            run_id=run_id,
            started=datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC),
            tags=dict(run.data.tags),
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            facts=json.loads(files[FACTS].read_text()),
            inputs=json.loads(files["model_inputs.json"].read_text()),
            scores=pd.read_parquet(files[TEST_SCORES]),
            tables={name: _logged_table(files[p]) for name, p in TABLES.items() if p in files},
            shap_png=files[SHAP_PLOT].read_bytes() if SHAP_PLOT in files else None,
        )


def _logged_table(path: Path) -> pd.DataFrame:
    """A table written by ``mlflow.log_table`` (JSON with ``columns`` and ``data``)."""
    data = json.loads(path.read_text())
    return pd.DataFrame(data["data"], columns=data["columns"])


# --- statistics the document shows ------------------------------------------------------------


def performance_table(scores: pd.DataFrame) -> pd.DataFrame:
    """AUC, Gini, KS, PR-AUC and Brier of every model on the test rows, each with a 95 % paired
    bootstrap interval (percentile; the same resamples for every model, so differences between
    rows are comparable), and the champion's AUC lead over each benchmark with its interval."""
    rounds, seed = get_settings().training.bootstrap_rounds, get_settings().training.seed
    names = [m for m in MODELS if m in scores.columns]
    ranked = [metrics.RankedScore(scores["label"], scores[m]) for m in names]

    def statistic(weight: np.ndarray | None = None) -> np.ndarray:
        found = [r.metrics(weight) for r in ranked]
        aucs = np.array([m["auc"] for m in found])
        return np.r_[[m[k] for m in found for k in INTERVAL_METRICS], aucs[0] - aucs[1:]]

    # Every model on the same resamples (paired), each a weighting of the rows: no re-sorting.
    point = statistic()
    resampled = [statistic(w) for w in metrics.resample_weights(len(scores), rounds, seed)]
    low, high = metrics.percentile_interval(resampled, axis=0)
    rows = []
    for i, name in enumerate(names):
        at = i * len(INTERVAL_METRICS)
        row = {"model": MODELS[name]}
        for j, metric in enumerate(INTERVAL_METRICS):
            row[metric] = point[at + j]
            row[f"{metric} 95% CI"] = (low[at + j], high[at + j])
        row["gini"] = 2 * row["auc"] - 1
        row["gini 95% CI"] = tuple(2 * v - 1 for v in row["auc 95% CI"])
        lead = len(names) * len(INTERVAL_METRICS) + i - 1  # this model's slot among the leads
        row["AUC lead of champion"] = None if i == 0 else point[lead]
        row["lead 95% CI"] = None if i == 0 else (low[lead], high[lead])
        rows.append(row)
    order = ["model"]
    for metric in ("auc", "gini", "ks", "pr_auc", "brier"):
        order += [metric, f"{metric} 95% CI"]
    return pd.DataFrame(rows)[[*order, "AUC lead of champion", "lead 95% CI"]]


def _interval(value) -> str:
    return "–" if value is None else f"[{value[0]:.3f}, {value[1]:.3f}]"


def master_scale_of(facts: dict[str, Any]) -> MasterScale | None:
    """The master scale a run was trained with (None for models without a PD)."""
    rows = facts.get("master_scale")
    if not rows:
        return None
    return MasterScale(tuple(r["grade"] for r in rows), tuple(r["pd_to"] for r in rows))


def _describe(feature: str, inputs: dict[str, Any]) -> str:
    """The feature store's description; aligned cross-sell inputs say which column they read."""
    from features.catalog import describe

    try:
        return describe(feature)
    except KeyError:
        if "_offered" in feature:
            return "The offered product's own value of the per-product column family " + feature
        return "model input" if feature not in inputs.get("categories", {}) else "key column"


# --- the sections -----------------------------------------------------------------------------


def _purpose(record: RunRecord) -> str:
    f = record.facts
    return h.paragraph(f["description"]) + h.paragraph(f["intended_use"] or "Not stated.")


def _label(record: RunRecord) -> str:
    f = record.facts
    return h.facts(
        {
            "Label": f["label_definition"],
            "Horizon": f"{f['horizon_months']} months after the snapshot",
            "Population": f["population"],
            "Event rate on the test snapshot": f"{record.metrics.get('test_event_rate', 0):.2%}",
        }
    )


def _data(record: RunRecord) -> str:
    f, s, rows = record.facts, record.facts["snapshots"], record.facts["rows"]
    items = {
        "Raw data window": f"{f['data_window'][0]} up to {f['data_window'][1]} (excluded)",
        "Data fingerprint": record.tags.get("data_fingerprint", "?"),
        "Raw data folder": record.tags.get("raw_dir", "?"),
        "Feature service (Feast)": f["feature_service"],
        "Training snapshots": f"{s['train'][0]} .. {s['train'][-1]} ({len(s['train'])})",
        "Validation snapshots": ", ".join(s["valid"]),
        "Test snapshot (out of time)": s["test"],
        "Train/test gap": f"{s['gap_months']} months" + (f" — {s['note']}" if s["note"] else ""),
        "Held-out customers": f"{s['holdout_share']:.0%} (validation; test: {s['test_customers']})",
        "Rows": f"train {rows['train']:,} · validation {rows['valid']:,} · test {rows['test']:,}",
        "Customer sample": f"{rows['customer_share']:.1%} of eligible customers",
    }  # fmt: skip
    return h.facts(items)


def _code(record: RunRecord) -> str:
    env = record.facts["environment"]
    dirty = env["git_uncommitted_changes"]
    items = {
        "Git commit": env["git_commit"]
        + (" (with uncommitted changes)" if dirty else "")
        + ("" if dirty is not None else " (status unknown)"),
        "Python": env["python"],
        "MLflow run": record.run_id,
        **{f"{name}": v for name, v in env["packages"].items()},
    }
    return h.facts(items)


def _features(record: RunRecord) -> str:
    importance = record.tables["importance"]
    monotone = record.inputs.get("monotone", {})
    direction = {1: "↑ score rises with it", -1: "↓ score falls with it"}
    table = importance.assign(
        description=[_describe(f, record.inputs) for f in importance["feature"]],
        monotone=[direction.get(monotone.get(f, 0), "") for f in importance["feature"]],
    )
    body = h.paragraph(
        f"{len(table)} inputs; importance is each input's share of the booster's total split "
        f"gain. {len(monotone)} inputs carry a monotone constraint."
    )
    from training import plots

    body += h.figure(plots.importance_figure(importance, "top 20 inputs by gain"), "importance")
    if record.shap_png is not None:
        data = base64.b64encode(record.shap_png).decode("ascii")
        body += f'<img alt="SHAP summary" src="data:image/png;base64,{data}">'
    return body + h.table(table, {"importance": h.percent(2)})


def _performance(record: RunRecord, performance: pd.DataFrame) -> str:
    from training import plots

    scores = record.scores
    intervals = {c: _interval for c in performance.columns if "CI" in c}
    numbers = {
        c: h.number(4 if c == "brier" else 3) for c in ("auc", "gini", "ks", "pr_auc", "brier")
    }
    numbers["AUC lead of champion"] = h.number(3)
    body = h.paragraph(
        f"On the out-of-time test snapshot {record.facts['snapshots']['test']} "
        f"({len(scores):,} rows, {int(scores['label'].sum()):,} events). Intervals: 95 % "
        f"percentile bootstrap, {get_settings().training.bootstrap_rounds} paired "
        "resamples of the test rows."
    )
    body += h.table(performance, {**numbers, **intervals})
    extra = {
        "Top-decile lift": f"{record.metrics.get('test_top_decile_lift', float('nan')):.2f}",
        "Oracle AUC on the same rows (synthetic data only)": _maybe(record.metrics, "oracle_auc"),
        "Gap to the oracle": _maybe(record.metrics, "oracle_gap"),
    }
    body += h.facts(extra)
    curves = {MODELS[m]: scores[m].to_numpy() for m in MODELS if m in scores.columns}
    title = f"{record.facts['model']} · test {record.facts['snapshots']['test']}"
    return body + h.figure(plots.roc_figure(scores["label"], curves, title), "ROC curves")


def _maybe(values: dict[str, float], key: str) -> str:
    return f"{values[key]:.3f}" if key in values else "n/a"


def _calibration(record: RunRecord, grades: pd.DataFrame | None) -> str:
    from training import plots

    scores = record.scores
    deciles = metrics.calibration_table(scores["label"], scores["champion"])
    title = f"{record.facts['model']} · test {record.facts['snapshots']['test']}"
    body = "<h3>By decile of the score</h3>" + h.table(
        deciles, {"mean_predicted": h.percent(2), "observed_rate": h.percent(2)}
    )
    body += h.figure(plots.calibration_figure(deciles, title), "calibration by decile")
    if grades is not None:
        body += "<h3>By rating grade (master scale)</h3>"
        body += h.paragraph(
            "Jeffreys test per grade (one-sided: is the PD too low for the defaults realised?)."
        )
        body += h.table(
            grades,
            {
                "pd_from": h.percent(2),
                "pd_to": h.percent(2),
                "mean_pd": h.percent(2),
                "realised_rate": h.percent(2),
                "jeffreys_pvalue": h.number(3),
                "status": h.status,
            },
        )
        body += h.figure(plots.grade_calibration_figure(grades, title), "calibration by grade")
    return body


def _stability(record: RunRecord) -> str:
    stability = record.tables["stability"]
    importance = record.tables["importance"]["feature"].head(TOP_CSI).tolist()
    shown = stability[(stability["column"] == "score") | stability["column"].isin(importance)]
    counts = stability.iloc[1:]["band"].value_counts()
    body = h.paragraph(
        f"{_reference_population(record)} against the test snapshot. Score PSI "
        f"{stability.iloc[0]['index']:.3f} ({stability.iloc[0]['band']}); CSI of all "
        f"{len(stability) - 1} inputs: {counts.get('green', 0)} green, {counts.get('amber', 0)} "
        f"amber, {counts.get('red', 0)} red. Shown: the score and the {TOP_CSI} most important "
        "inputs. Bands: < 0.10 green, 0.10–0.25 amber, ≥ 0.25 red."
    )
    return body + h.table(
        shown,
        {
            "index": h.number(3),
            "band": h.status,
            "missing_reference": h.percent(1),
            "missing_actual": h.percent(1),
            "missing_change": h.percent(1),
        },
    )


def _reference_population(record: RunRecord) -> str:
    """Which training rows the stability reference holds (``training.reference_rows``)."""
    drawn, trained = record.metrics.get("reference_rows"), int(record.params.get("rows_train", 0))
    if drawn is None or not trained:  # a run logged before the reference was drawn
        return "Training population"
    if drawn < trained:
        return f"Training population (a random {drawn:,.0f} of its {trained:,} rows)"
    return f"Training population (all {trained:,} rows)"


def _comparison(record: RunRecord, performance: pd.DataFrame) -> str:
    leads = performance.iloc[1:]
    lines = [
        f"Champion AUC minus {row['model']}: {row['AUC lead of champion']:+.3f} "
        f"(95 % CI {_interval(row['lead 95% CI'])}) on the same {len(record.scores):,} test rows."
        for _, row in leads.iterrows()
    ]
    body = "".join(h.paragraph(line) for line in lines)
    points = record.tables.get("points")
    if points is not None:
        facts = record.facts
        sc = facts["scorecard"]
        body += "<h3>The scorecard challenger's points table</h3>"
        body += h.paragraph(
            f"optbinning WoE bins (monotone, with missing and special bins) and a logistic "
            f"regression on the {len(facts['challenger_characteristics'])} characteristics with "
            f"the most information value; points scaled like the champion's: "
            f"{sc['base_points']:.0f} points at {sc['base_odds']:.0f}:1 good:bad odds, "
            f"{sc['points_to_double']:.0f} points to double the odds. The challenger is never "
            "promoted."
        )
        body += h.table(
            points,
            {"event_rate": h.percent(2), "woe": h.number(3), "points": h.number(1)},
        )
    elif "challenger" not in record.scores.columns:
        body += h.paragraph("This model has no scorecard challenger (credit risk only).")
    return body


def _promotion(record: RunRecord) -> str:
    tags = record.tags
    decision = tags.get("promotion.decision", "not recorded")
    reason = tags.get("promotion.reason", "")
    body = h.paragraph(f"Decision: {decision}.", "verdict") + h.paragraph(reason)
    return body + h.facts(
        {
            "Promotion metric": record.params.get("promotion_metric", "?"),
            "Required improvement": record.params.get("promotion_min_improvement", "?"),
            "Candidate value": _maybe(record.metrics, record.params.get("promotion_metric", "")),
            "Champion value (same test rows where it could re-score)": _maybe(
                record.metrics, "champion_test_metric"
            ),
        }
    )


def _limitations(record: RunRecord) -> str:
    f = record.facts
    items = list(f["limitations"])
    if f["snapshots"]["note"]:
        items.append(f"Split: {f['snapshots']['note']}.")
    if f["rows"]["customer_share"] < 1:
        items.append(
            f"Trained on a {f['rows']['customer_share']:.1%} sample of the eligible customers "
            "(training.max_rows)."
        )
    events = int(record.scores["label"].sum())
    if events < 100:
        items.append(
            f"Only {events} events on the test snapshot: performance figures carry wide intervals."
        )
    if "oracle_auc" in record.metrics:
        items.append("Trained and tested on synthetic data (the oracle's figures exist).")
    return "<ul>" + "".join(f"<li>{h.escape(item)}</li>" for item in items) + "</ul>"


def render(record: RunRecord) -> str:
    """The document's HTML from a run record (pure: the same record gives the same bytes)."""
    scale = master_scale_of(record.facts)
    scores = record.scores
    grades = None if scale is None else grade_backtest(scores["label"], scores["champion"], scale)
    performance = performance_table(scores)
    sections = [
        ("purpose", "1. Purpose and use", _purpose(record)),
        ("label", "2. Label, horizon and population", _label(record)),
        ("data", "3. Data: window, snapshots and fingerprint", _data(record)),
        ("code", "4. Code and package versions", _code(record)),
        ("features", "5. Features: descriptions, importance, monotone constraints",
         _features(record)),
        ("performance", "6. Out-of-time performance", _performance(record, performance)),
        ("calibration", "7. Calibration", _calibration(record, grades)),
        ("stability", "8. Stability", _stability(record)),
        ("comparison", "9. Comparison with the benchmarks", _comparison(record, performance)),
        ("promotion", "10. Promotion decision", _promotion(record)),
        ("limitations", "11. Known limitations", _limitations(record)),
    ]  # fmt: skip
    title = f"{record.registered_name} v{record.version} — model document"
    subtitle = (
        f"Trained {record.started:%Y-%m-%d %H:%M} UTC · MLflow run {record.run_id} · "
        f"test snapshot {record.facts['snapshots']['test']} · "
        f"{record.tags.get('promotion.decision', 'promotion not recorded')}"
    )
    return h.page(title, subtitle, sections)


def document_html(client, registered_name: str, version: str) -> str:
    """The model document of one registered version, rendered from its run."""
    return render(read_run(client, registered_name, version))
