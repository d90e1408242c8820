"""The shared training pipeline end to end on a small generated bank, through the real stack:
synthetic raw tables -> DuckDB feature tables registered in Feast -> training -> MLflow registry
(a temporary SQLite store) -> champion loaded back."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmscore.settings import get_settings
from models import CREDIT_RISK, MODELS
from tests.stacks import built_stack, stack_env
from training.pipeline import train_model
from training.registry import load_champion
from training.scorecard import Scorecard


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """A small synthetic bank with its Feast feature store and an empty MLflow store."""
    root = tmp_path_factory.mktemp("training")
    env = stack_env(root, CRMSCORE_TRAINING__SHAP_ROWS="300")
    with built_stack(root, env, customers=1500, seed=3):
        yield root


FAST = {"n_estimators": 300, "learning_rate": 0.1, "early_stopping_rounds": 20}


@pytest.fixture(scope="module")
def first_runs(bank):
    return {name: train_model(name, lgbm_overrides=FAST) for name in MODELS}


def test_each_model_is_registered_with_metrics_and_a_champion(first_runs):
    from mlflow import MlflowClient

    client = MlflowClient(get_settings().training.tracking_uri)
    for name, result in first_runs.items():
        # The first version: the reason says there was no champion, once.
        assert result.promoted
        assert re.fullmatch(r"no champion yet; test \w+ \d\.\d{4}", result.reason), result.reason
        run = client.get_run(result.run_id)
        assert run.data.tags["feature_service"] == name
        assert run.data.tags["promotion.decision"] == "promoted"
        for metric in ("test_auc", "test_auc_ci_low", "test_ks", "test_brier", "oracle_auc"):
            assert np.isfinite(run.data.metrics[metric]), (name, metric)
        assert run.data.metrics["test_auc"] > 0.6, name
        artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
        assert "plots/roc.png" in artifacts and "plots/shap_summary.png" in artifacts
        champion = load_champion(name)
        assert champion.version == result.version
        assert champion.registered_name == f"crmscore-{name}"


SECTIONS = {
    "purpose": "1. Purpose and use",
    "label": "2. Label, horizon and population",
    "data": "3. Data: window, snapshots and fingerprint",
    "code": "4. Code and package versions",
    "features": "5. Features: descriptions, importance, monotone constraints",
    "performance": "6. Out-of-time performance",
    "calibration": "7. Calibration",
    "stability": "8. Stability",
    "comparison": "9. Comparison with the benchmarks",
    "promotion": "10. Promotion decision",
    "limitations": "11. Known limitations",
}


def test_every_run_logs_its_model_document_and_the_cli_writes_the_same_bytes(first_runs, tmp_path):
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from crmscore.cli import app

    client = MlflowClient(get_settings().training.tracking_uri)
    for name, result in first_runs.items():
        logged = client.download_artifacts(result.run_id, "model_document.html", str(tmp_path))
        out = tmp_path / f"{name}.html"
        cli = CliRunner().invoke(
            app, ["document", name, "--version", result.version, "--out", str(out)]
        )
        assert cli.exit_code == 0, cli.output
        assert out.read_bytes() == Path(logged).read_bytes(), name  # deterministic per run
        html = out.read_text()
        assert "<script" not in html and "http://" not in html and "https://" not in html
        for anchor in SECTIONS:
            assert f'id="{anchor}"' in html, (name, anchor)


def test_the_credit_model_document_reads_in_a_browser(first_runs, tmp_path):
    from mlflow import MlflowClient

    from tests.browser import browser_page

    result = first_runs["credit_risk"]
    client = MlflowClient(get_settings().training.tracking_uri)
    path = client.download_artifacts(result.run_id, "model_document.html", str(tmp_path))
    with browser_page() as page:
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"file://{path}")
        assert page.title() == f"crmscore-credit_risk v{result.version} — model document"
        for anchor, title in SECTIONS.items():
            assert page.locator(f"section#{anchor} > h2").inner_text() == title
        images = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert len(images) == 5 and all(width > 0 for width in images)  # every plot decodes
        assert {url.split(":")[0] for url in requests} <= {"file", "data"}  # no network
        performance = page.locator("section#performance table").first.inner_text()
        for model in ("LightGBM champion", "logistic baseline", "WoE scorecard challenger"):
            assert model in performance
        grades = page.locator("section#calibration table").nth(1).inner_text()
        assert "jeffreys_pvalue" in grades and "\n10\t" in grades  # all ten master-scale grades
        points = page.locator("section#comparison table").inner_text()
        assert "Missing" in points and "Special" in points
        assert page.locator("section#promotion .verdict").inner_text() == "Decision: promoted."


def test_an_unknown_version_is_refused_and_nothing_is_written(tmp_path):
    from typer.testing import CliRunner

    from crmscore.cli import app

    result = CliRunner().invoke(
        app, ["document", "churn", "--version", "999", "--out", str(tmp_path / "x.html")]
    )
    assert result.exit_code == 1
    assert "crmscore-churn version 999" in result.output and not (tmp_path / "x.html").exists()


def test_champion_scores_and_explains(first_runs, bank):
    import shap

    champion = load_champion("credit_risk")
    from features.training_set import get_training_set

    entities = pd.DataFrame(
        {
            "customer_id": np.arange(1, 41, dtype="int64"),
            "event_timestamp": pd.Timestamp("2025-01-01"),
        }
    )
    frame = get_training_set(entities, "credit_risk")
    scores = champion.score(frame)
    assert scores["probability"].between(0, 1).all() and "points" in scores
    values = shap.TreeExplainer(champion.booster).shap_values(champion.prepare(frame))
    assert np.shape(values)[-1] == len(champion.features)
    assert champion.tags["promotion.decision"] == "promoted"


def test_a_worse_model_does_not_take_the_champion_alias(first_runs):
    worse = train_model(
        "churn",
        lgbm_overrides={**FAST, "n_estimators": 1, "num_leaves": 2, "min_child_samples": 5000},
    )
    # A single tree that cannot split (5,000 rows per leaf) scores everyone alike: the quality
    # gate refuses it before any comparison with the champion.
    assert not worse.promoted
    assert worse.reason == (
        "quality gate: AUC 0.500 (95% CI 0.500-0.500) does not beat a constant score (0.5); "
        "registered only"
    )
    assert load_champion("churn").version == first_runs["churn"].version


def test_same_seed_same_metrics(first_runs):
    again = train_model("credit_risk", lgbm_overrides=FAST)
    before = first_runs["credit_risk"].metrics
    for key in ("test_auc", "test_ks", "test_brier", "baseline_test_auc", "psi_train_test"):
        assert again.metrics[key] == pytest.approx(before[key], abs=1e-12), key
    # Same metric as the champion: a tie does not move the alias. (This small bank's credit risk
    # is cross-validated, so the champion's logged metric is the one compared.)
    assert not again.promoted
    assert again.split.cross_validated
    assert "does not beat champion" in again.reason
    assert "logged metric (cross-validated)" in again.reason


def test_features_fetched_in_chunks_equal_one_fetch(bank):
    from features.training_set import get_training_set
    from training.dataset import fetch_features

    entities = pd.DataFrame(
        {
            "customer_id": np.arange(1, 61, dtype="int64").repeat(2),
            "event_timestamp": pd.to_datetime(["2024-10-01", "2025-01-01"] * 60),
        }
    )
    whole = fetch_features(entities, "churn", get_training_set, chunk_rows=len(entities))
    chunked = fetch_features(entities, "churn", get_training_set, chunk_rows=7)
    pd.testing.assert_frame_equal(chunked, whole)
    numeric = whole.drop(columns=["customer_id", "event_timestamp"]).select_dtypes("number")
    assert set(numeric.dtypes) == {np.dtype("float32")}  # half the memory of float64
    assert numeric.notna().any().any()


def test_row_caps_train_on_a_customer_sample_and_draw_the_stability_reference(
    first_runs, monkeypatch
):
    monkeypatch.setenv("CRMSCORE_TRAINING__MAX_ROWS", "5000")
    monkeypatch.setenv("CRMSCORE_TRAINING__REFERENCE_ROWS", "1000")
    get_settings.cache_clear()
    try:
        capped = train_model("churn", lgbm_overrides=FAST)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    import mlflow
    from mlflow import MlflowClient

    from training.document import DOCUMENT_ARTIFACT
    from training.pipeline import REFERENCE_ARTIFACT

    client = MlflowClient(get_settings().training.tracking_uri)

    def rows(run_id: str) -> int:
        """Labelled rows of a run (cross-validated: the test rows are the train + valid ones)."""
        params = client.get_run(run_id).data.params
        roles = ["train", "valid"]
        roles += ["test"] if params["split.evaluation"] == "out_of_time" else []
        return sum(int(params[f"rows_{role}"]) for role in roles)

    assert rows(capped.run_id) <= 5000 < rows(first_runs["churn"].run_id)
    assert 0 < float(client.get_run(capped.run_id).data.params["customer_share"]) < 1
    assert capped.metrics["test_auc"] > 0.55

    def reference_and_training_rows(run_id: str) -> tuple[int, int]:
        reference = mlflow.artifacts.load_dict(f"runs:/{run_id}/{REFERENCE_ARTIFACT}")
        return reference["rows"], int(client.get_run(run_id).data.params["rows_train"])

    def document(run_id: str) -> str:
        return mlflow.artifacts.load_text(f"runs:/{run_id}/{DOCUMENT_ARTIFACT}")

    # The stability reference: 1,000 training rows drawn under its cap, every row below it; the
    # model document says which.
    drawn, trained = reference_and_training_rows(capped.run_id)
    assert drawn == 1000 < trained
    assert f"Training population (a random 1,000 of its {trained:,} rows)" in document(
        capped.run_id
    )
    first = first_runs["churn"].run_id
    drawn, trained = reference_and_training_rows(first)
    assert drawn == trained
    assert f"Training population (all {trained:,} rows)" in document(first)


def test_drawn_keeps_a_short_frame_and_draws_the_same_rows_of_a_long_one():
    from training.dataset import drawn

    frame = pd.DataFrame({"x": range(10)})
    assert drawn(frame, 10) is frame  # not longer than the cap: every row, not even a copy
    first, again = drawn(frame, 4), drawn(frame, 4)
    assert len(first) == 4 and first.index.is_unique
    assert first.index.equals(again.index)  # seeded (training.seed): the same rows every run


def test_training_threads_are_one_for_small_sets_all_cores_for_large_ones_unless_fixed(monkeypatch):
    from training.pipeline import training_threads

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2})  # three usable cores
    monkeypatch.setenv("CRMSCORE_TRAINING__PARALLEL_ROWS", "1000")
    get_settings.cache_clear()
    try:
        assert training_threads(999) == 1  # below the threshold: one thread
        assert training_threads(1000) == 3  # at it: every usable core
        monkeypatch.setenv("CRMSCORE_TRAINING__N_JOBS", "2")
        get_settings.cache_clear()
        assert training_threads(10) == training_threads(10**7) == 2  # fixed whatever the size
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_the_refit_runs_only_for_uncalibrated_models_with_unseen_test_customers_below_the_cap(
    monkeypatch,
):
    from datetime import date

    from training.pipeline import refits
    from training.split import OutOfTimeSplit

    months = (date(2024, 1, 1),)
    full_gap = OutOfTimeSplit(months, months, date(2024, 6, 1), gap_months=3, horizon_months=3)
    short_gap = OutOfTimeSplit(months, months, date(2024, 6, 1), gap_months=1, horizon_months=3)
    monkeypatch.setenv("CRMSCORE_TRAINING__REFIT_MAX_ROWS", "1000")
    get_settings.cache_clear()
    try:
        assert refits(MODELS["churn"], full_gap, 999)  # uncalibrated, full gap, small set
        assert not refits(MODELS["churn"], full_gap, 1000)  # at the cap: the refit moves nothing
        assert not refits(MODELS["churn"], short_gap, 10)  # test rows must stay unseen customers
        assert not refits(CREDIT_RISK, full_gap, 10)  # the calibrator needs the validation rows
        monkeypatch.setenv("CRMSCORE_TRAINING__REFIT", "false")
        get_settings.cache_clear()
        assert not refits(MODELS["churn"], full_gap, 10)  # switched off
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_scorecard_points_fall_as_default_probability_rises():
    card = Scorecard(base_points=600, base_odds=50, points_to_double=20)
    pd_grid = np.linspace(0.001, 0.999, 500)
    assert np.all(np.diff(card.points(pd_grid)) < 0)
    assert card.points([1 / 51])[0] == pytest.approx(600)
    assert card.points([1 / 101])[0] == pytest.approx(620, abs=0.1)


def test_monotone_constraints_resolve_by_feature_name():
    features = ["max_days_past_due_6m", "utilisation", "salary_regularity_6m", "income_band"]
    assert CREDIT_RISK.monotone_constraints(features) == [1, 1, -1, 0]
    feast_names = [
        "credit_months_since_delinquency",
        "credit_months_30dpd_12m",
        "credit_utilisation_change_3m",
        "txn_salary_months_12m",
    ]
    assert CREDIT_RISK.monotone_constraints(feast_names) == [-1, 1, 0, -1]


def test_promotion_rule():
    keep = MODELS["churn"].decide_promotion(0.70, 0.71)
    assert not keep.promote and "does not beat" in keep.reason
    assert MODELS["churn"].decide_promotion(0.72, 0.71).promote
    assert MODELS["churn"].decide_promotion(0.5, None).promote


def test_split_is_out_of_time_and_validates_on_unseen_customers():
    from training.split import split_snapshots

    months = [d.date() for d in pd.date_range("2024-04-01", "2025-10-01", freq="MS")]
    split = split_snapshots(months, 3, validation=3, min_train=6, holdout_share=0.3)
    assert split.gap_months == 3 and not split.test_holdout_only
    assert pd.Timestamp(split.valid[-1]) + pd.DateOffset(months=3) <= pd.Timestamp(split.test)
    assert max(split.train) < min(split.valid)
    grid = pd.DataFrame(
        [(c, pd.Timestamp(m)) for c in range(1, 2001) for m in months],
        columns=["customer_id", "event_timestamp"],
    )
    grid["role"] = split.roles(grid)
    ids = {role: set(rows.customer_id) for role, rows in grid.groupby("role")}
    assert not ids["train"] & ids["valid"]
    assert len(ids["valid"]) == pytest.approx(600, rel=0.15)
    assert len(ids["test"]) == 2000
    # Twelve-month horizon on 10 snapshots: the gap shrinks, so test customers are held out too.
    short = split_snapshots(months[:10], 12, validation=3, min_train=6)
    assert short.test_holdout_only and "shortened" in short.note
    grid["role"] = short.roles(grid)
    ids = {role: set(rows.customer_id) for role, rows in grid.groupby("role")}
    assert not ids["train"] & ids["test"]


def test_training_parts_are_slices_of_the_frame_with_the_rows_a_selection_gives():
    """Out-of-time training sets keep one frame ordered by role; each part is a view of it (no
    gigabyte copies at a million customers) holding exactly the rows, in the order, a boolean
    selection would."""
    from training.dataset import TrainingSet, in_role_order

    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5, 6],
            "role": [
                "test",  # 1: last after ordering
                "train",  # 2: first train row
                "valid",  # 3
                "unused",  # 4: after test
                "train",  # 5: second train row, after 2 as before
                "valid",  # 6: after 3 as before
            ],
            "x": np.arange(6, dtype=np.float32),
        }
    )
    before = {role: TrainingSet(frame, ["x"], []).part(role) for role in ("train", "valid", "test")}
    data = TrainingSet(in_role_order(frame), ["x"], [])
    assert data.frame["customer_id"].tolist() == [2, 5, 3, 6, 1, 4]
    for role, selected in before.items():
        part = data.part(role)
        pd.testing.assert_frame_equal(part, selected)
        assert np.shares_memory(part["x"].to_numpy(), data.frame["x"].to_numpy()), role
    assert data.part("train", "valid")["customer_id"].tolist() == [2, 5, 3, 6]
    assert in_role_order(data.frame) is data.frame  # in order already: no copy
    # Roles out of order (cross-validation keeps them so): a selection, still the right rows.
    assert TrainingSet(frame, ["x"], []).part("train")["customer_id"].tolist() == [2, 5]


@pytest.mark.parametrize("answer_reversed", [False, True])
def test_a_training_set_gives_each_label_row_its_entitys_features_in_role_order(answer_reversed):
    """Roles are settled on the labels, so rows no role uses are never fetched and, out of time,
    the rows come in role order before the join. Every label row gets its own entity's features,
    whether the entity has one row or one per product, and whatever order the source answers in
    (a source that reorders its rows is joined on the keys)."""
    from dataclasses import replace

    from models import get_definition
    from training.dataset import assemble_training_set
    from training.split import OutOfTimeSplit

    jan, feb = pd.Timestamp("2025-01-01"), pd.Timestamp("2025-02-01")
    labels = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 2, 3],
            "event_timestamp": [jan, jan, jan, feb, feb],
            "product": ["card", "loan", "card", "card", "loan"],
            "label": [0, 1, 0, 1, 1],
            "role": [
                "valid",  # customer 1 in January, two products: one entity fetched for both
                "valid",
                "unused",  # customer 2 in January: no role, never fetched
                "train",  # customer 2 in February: first after ordering
                "test",  # customer 3 in February: last
            ],
        }
    )
    asked = []

    def source(entities: pd.DataFrame, service: str) -> pd.DataFrame:
        asked.extend(
            zip(entities["customer_id"], entities["event_timestamp"].dt.month, strict=True)
        )
        # spend = 10 x customer + month: says whose features a row got
        answer = entities.assign(
            spend=entities["customer_id"] * 10.0 + entities["event_timestamp"].dt.month
        )
        return answer.iloc[::-1] if answer_reversed else answer

    split = OutOfTimeSplit(train=(feb.date(),), valid=(jan.date(),), test=feb.date(), gap_months=0)
    data = assemble_training_set(get_definition("cross_sell"), split, labels, source)
    rows = data.frame[["customer_id", "product", "role", "label", "spend"]]
    assert rows.values.tolist() == [
        [2, "card", "train", 1, 22.0],
        [1, "card", "valid", 0, 11.0],
        [1, "loan", "valid", 1, 11.0],
        [3, "loan", "test", 1, 32.0],
    ]
    assert sorted(asked) == [(1, 1), (2, 2), (3, 2)]
    assert data.features == ["product", "spend"] and data.categorical == ["product"]
    assert data.frame["spend"].dtype == np.float32

    # Cross-validated: the labels' own order.
    data = assemble_training_set(
        get_definition("cross_sell"), replace(split, cross_validated=True), labels, source
    )
    assert data.frame["customer_id"].tolist() == [1, 1, 2, 3]
    assert data.frame["spend"].tolist() == [11.0, 11.0, 22.0, 32.0]


def test_encoding_in_place_gives_the_scoring_models_encoding_without_copying_float_columns():
    """Training encodes its frame in place; serving calls prepare_features: same values."""
    from training.scoring_model import encode_in_place, prepare_features

    frame = pd.DataFrame(
        {
            "spend": np.array([1.5, np.nan, 3.0], dtype=np.float32),  # fetched: float32 already
            "count": [1, 2, 3],  # int64: becomes float32
            "flag": [True, False, True],  # bool: becomes 0/1
            "segment": ["mass", None, "vip"],  # categorical: "vip" unseen -> missing
            "label": [0, 1, 0],  # not a feature: untouched
        }
    )
    features, categories = ["spend", "count", "flag", "segment"], {"segment": ["affluent", "mass"]}
    expected = prepare_features(frame, features, categories)
    spend = frame["spend"].to_numpy()
    encode_in_place(frame, features, categories)
    pd.testing.assert_frame_equal(frame[features], expected)
    assert frame["segment"].isna().tolist() == [False, True, True]
    assert frame["spend"].to_numpy() is spend or np.shares_memory(frame["spend"].to_numpy(), spend)
    assert frame["label"].tolist() == [0, 1, 0]
    with pytest.raises(KeyError, match="lacks 1 model feature"):
        encode_in_place(frame, [*features, "tenure"], categories)


def test_train_command_names_missing_data(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from crmscore.cli import app

    monkeypatch.setenv("CRMSCORE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["train", "churn", "--no-progress"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "raw table 'accounts' not found" in result.output


def test_aligned_columns_read_the_offered_products_column():
    from training.alignment import add_aligned_columns, alignment_templates

    columns = ["views_mortgage_3m", "views_insurance_3m", "credit_card_utilisation", "age"]
    templates = alignment_templates(columns, ["insurance", "mortgage"])
    assert templates == {
        "views_offered_3m": {"mortgage": "views_mortgage_3m", "insurance": "views_insurance_3m"}
    }
    frame = pd.DataFrame(
        {
            "product": ["mortgage", "insurance"],
            "views_mortgage_3m": [5, 7],
            "views_insurance_3m": [1, 2],
        }
    )
    aligned = add_aligned_columns(frame, "product", templates)
    assert aligned["views_offered_3m"].tolist() == [5.0, 2.0]


def test_no_champion_only_when_the_registry_says_so(tmp_path, monkeypatch):
    """A registry that fails is not a registry without a champion: read as one, a hiccup at
    promotion time promoted a new version unchecked, and serving blamed a missing champion."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from tests.servers import free_port
    from training.registry import current_champion, registered_name

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = MlflowClient(tracking_uri=uri, registry_uri=uri)
    registry.create_registered_model(registered_name("churn"))  # registered, no alias yet
    assert current_champion(registry, "churn") is None
    assert current_champion(registry, "cross_sell") is None  # not even registered
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(MlflowException):
        current_champion(MlflowClient(tracking_uri=down, registry_uri=down), "churn")
