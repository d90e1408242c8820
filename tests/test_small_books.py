"""Small books: settings that let trees split on a few hundred rows, repeated cross-validation with
an interval when an out-of-time test is impossible, and a quality gate before promotion."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from models import get_definition
from tests.stacks import settings_env, stack_env


def test_leaf_settings_shrink_with_small_books():
    credit = get_definition("credit_risk")
    small = credit.lgbm_params_for(600)
    assert (small["min_child_samples"], small["num_leaves"]) == (12, 6)
    tiny = credit.lgbm_params_for(100)
    assert (tiny["min_child_samples"], tiny["num_leaves"]) == (10, 4)
    large = credit.lgbm_params_for(200_000)
    assert (large["min_child_samples"], large["num_leaves"]) == (300, 15)  # the base settings


@pytest.mark.parametrize(
    ("auc", "low", "high", "baseline", "promote", "says"),
    [
        (0.58, 0.47, 0.69, 0.55, False, "does not beat a constant score (0.5)"),
        (0.70, 0.66, 0.74, 0.80, False, "falls clearly below the logistic baseline (0.800)"),
        (0.74, 0.70, 0.78, 0.75, True, "quality gate passed"),  # below, but within the interval
        (0.80, float("nan"), float("nan"), 0.7, False, "does not beat a constant score"),
    ],
)
def test_the_quality_gate(auc, low, high, baseline, promote, says):
    decision = get_definition("churn").quality_gate(
        {
            "test_auc": auc,
            "test_auc_ci_low": low,
            "test_auc_ci_high": high,
            "baseline_test_auc": baseline,
        }
    )
    assert decision.promote is promote and says in decision.reason


def test_the_auc_interval_resamples_whole_customers():
    from training.metrics import auc_interval, roc_auc

    rng = np.random.default_rng(0)
    customers = np.repeat(np.arange(300), 10)  # ten rows per customer, one outcome each
    y = np.repeat(rng.random(300) < 0.2, 10).astype(int)
    score = np.repeat(rng.random(300), 10) + 0.3 * y
    low, high = auc_interval(y, score, customers, rounds=200)
    rows_low, rows_high = auc_interval(y, score, None, rounds=200)
    assert low < roc_auc(y, score) < high
    # Resampling rows treats 3,000 rows as independent: an interval about sqrt(10) too narrow.
    assert (high - low) > 2 * (rows_high - rows_low)


# --- a small book of decided cases, end to end ------------------------------------------------


@pytest.fixture(scope="module")
def case_book(small_bank, tmp_path_factory):
    """The small bank with the bank's own decided cases (400 customers, decided on four days) of
    two outcomes: ``churned`` (did the customer leave within 6 months: the synthetic truth, so
    learnable) and ``coin`` (a coin toss: nothing to learn)."""
    from features.build import apply, build_feature_tables

    root = tmp_path_factory.mktemp("cases")
    shutil.copytree(small_bank, root / "data")
    events = pd.read_parquet(small_bank / "oracle" / "events", filters=[("outcome", "==", "churn")])
    churned = dict(zip(events["customer_id"], pd.to_datetime(events["event_date"]), strict=False))
    rng = np.random.default_rng(5)
    customers = rng.choice(np.arange(1, 501), 400, replace=False)
    days = pd.to_datetime(rng.choice(["2024-07-09", "2024-08-21", "2024-09-30", "2024-11-15"], 400))
    left = [
        c in churned and d <= churned[c] < d + pd.DateOffset(months=6)
        for c, d in zip(customers, days, strict=True)
    ]
    rows = []
    for outcome, happened in (("churned", left), ("coin", rng.random(400) < 0.25)):
        rows += [(outcome, int(c), d.date(), bool(h)) for c, d, h in zip(customers, days, happened,
                                                                        strict=True)]  # fmt: skip
    outcomes = pd.DataFrame(rows, columns=["outcome", "customer_id", "date", "happened"])
    outcomes.insert(0, "outcome_id", range(1, len(outcomes) + 1))
    outcomes["happened"] = outcomes["happened"].astype("boolean")
    (root / "data" / "raw" / "outcomes").mkdir()
    outcomes.to_parquet(root / "data" / "raw" / "outcomes" / "part-0.parquet", index=False)
    models = {
        name: {"outcome": name, "description": f"{name} cases", "features": "churn"}
        for name in ("churned", "coin")
    }
    import json

    env = stack_env(
        root,
        CRMSCORE_TRAINING__CUSTOM_MODELS=json.dumps(models),
        CRMSCORE_TRAINING__CV_REPEATS="2",
        CRMSCORE_TRAINING__SHAP_ROWS="100",
    )
    with settings_env(env):
        build_feature_tables()
        apply()
        yield outcomes


@pytest.mark.slow
def test_a_small_case_book_is_cross_validated_and_a_useless_model_never_champion(case_book):
    from training.pipeline import train_model
    from training.registry import configure_mlflow, current_champion

    learnable = train_model("churned")
    assert learnable.split.cross_validated
    assert "decided cases are dated by the bank" in learnable.split.note
    metrics = learnable.metrics
    assert metrics["cv_repeats"] == 2 and metrics["cv_folds"] == 5
    assert metrics["test_rows"] == 400
    assert 0.5 < metrics["test_auc_ci_low"] < metrics["test_auc"] < metrics["test_auc_ci_high"]
    assert learnable.promoted, learnable.reason

    coin = train_model("coin")
    assert not coin.promoted
    assert "quality gate" in coin.reason and "registered only" in coin.reason
    client = configure_mlflow()
    assert current_champion(client, "coin") is None  # registered, never champion
    version = client.get_model_version("crmscore-coin", coin.version)
    assert version.tags["promotion.decision"] == "not promoted"
