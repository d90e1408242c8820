"""The one training pipeline every model definition runs through.

``train_model("churn")`` runs five steps, each a function with a dataclass out, so the model
document and monitoring reuse them:

1. :func:`prepare` -> :class:`PreparedData`: pick the fully labelled snapshots and split them out
   of time (:mod:`training.split`), build point-in-time labels from raw data and join Feast
   features (:mod:`training.dataset`), encode them as the model will;
2. :func:`fit` -> :class:`FittedModels`: LightGBM with early stopping on the validation snapshots
   (monotone where the definition says so), a logistic-regression baseline, and a Platt
   calibrator if the definition asks;
3. :func:`evaluate` -> :class:`Evaluation`: on the test snapshot, AUC, PR-AUC, KS, Gini, Brier,
   lift, calibration, PSI, and the synthetic oracle's AUC on the same rows when an oracle exists;
4. :func:`log_run` -> :class:`LoggedRun`: everything into MLflow, the model registered;
5. :func:`promote` -> :class:`Promotion`: move the ``champion`` alias only if the new version
   beats the current champion on the promotion metric, re-scored on the same test rows.

Then the model document (:mod:`training.document`) is rendered from the run alone and logged.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmscore.dataset import data_fingerprint
from crmscore.settings import get_settings
from models import get_definition
from models.definition import ModelDefinition, PromotionDecision
from training import metrics
from training.alignment import add_aligned_columns, alignment_templates
from training.challenger import ScorecardChallenger, fit_scorecard_challenger
from training.dataset import (
    ENTITY,
    TrainingSet,
    TrainingSetSource,
    assemble_training_set,
    candidate_snapshots,
    drawn,
    feast_training_set,
    labelled_rows,
)
from training.document import DOCUMENT_ARTIFACT, document_html, log_document_inputs
from training.labels import LabelSource, fully_labelled, label_source
from training.oracle import oracle_probabilities
from training.scorecard import Scorecard
from training.scoring_model import ScoringModel, categorical_levels, encode_in_place
from training.split import OutOfTimeSplit, cross_validation_split, holdout_mask, split_snapshots
from training.stability import StabilityReference

#: The steps reported to a progress callback, in order.
STEPS = (
    "split", "labels + features", "fit", "evaluate", "log to MLflow", "promotion", "document",
)  # fmt: skip
#: The training population's stability reference, logged with every model for monitoring.
REFERENCE_ARTIFACT = "monitoring/reference.json"


@dataclass
class TrainingResult:
    """What one training run produced and decided."""

    model: str
    run_id: str
    registered_name: str
    version: str
    metrics: dict[str, float]
    promoted: bool
    reason: str
    split: OutOfTimeSplit
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The row of the CLI summary table."""
        m = self.metrics
        return {
            "model": self.model,
            "version": self.version,
            "auc": m.get("test_auc"),
            "auc_ci_low": m.get("test_auc_ci_low"),
            "auc_ci_high": m.get("test_auc_ci_high"),
            "baseline_auc": m.get("baseline_test_auc"),
            "oracle_auc": m.get("oracle_auc"),
            "gap": m.get("oracle_gap"),
            "ks": m.get("test_ks"),
            "brier": m.get("test_brier"),
            "top_decile_lift": m.get("test_top_decile_lift"),
            "champion": self.promoted,
        }


def training_threads(n_rows: int) -> int:
    """LightGBM threads for a fit on ``n_rows`` rows (``training.n_jobs``, else by size)."""
    settings = get_settings().training
    if settings.n_jobs is not None:
        return settings.n_jobs
    return 1 if n_rows < settings.parallel_rows else len(os.sched_getaffinity(0))


def fit_lightgbm(
    definition: ModelDefinition,
    data: TrainingSet,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    overrides: dict[str, Any] | None = None,
):
    """LightGBM on the training snapshots, stopped early on the validation snapshots' AUC."""
    import lightgbm as lgb

    settings = get_settings().training
    params = {**definition.lgbm_params_for(len(train)), **(overrides or {})}
    stopping_rounds = int(params.pop("early_stopping_rounds"))
    estimator = lgb.LGBMClassifier(
        **params,
        monotone_constraints=definition.monotone_constraints(data.features),
        random_state=settings.seed,
        n_jobs=training_threads(len(train)),
        deterministic=True,
        force_col_wise=True,
        verbose=-1,
    )
    estimator.fit(
        train[data.features],
        train["label"],
        eval_X=(valid[data.features],),
        eval_y=(valid["label"],),
        eval_metric="auc",
        callbacks=[lgb.early_stopping(stopping_rounds, first_metric_only=True, verbose=False)],
    )
    return estimator


def refit_on_all_rows(estimator, rows: pd.DataFrame, features: list[str]):
    """The final booster: the early-stopped settings, refitted on every train + validation row.

    Early stopping needs customers the booster never saw; once it has chosen the number of trees,
    those customers are worth more as training data. 20% more trees for the larger sample.
    """
    import lightgbm as lgb

    params = {
        **estimator.get_params(),
        "n_estimators": max(1, round(estimator.best_iteration_ * 1.2)),
    }
    return lgb.LGBMClassifier(**params).fit(rows[features], rows["label"])


def logistic_baseline(data: TrainingSet, train: pd.DataFrame):
    """Impute, scale and one-hot encode, then a logistic regression: the yardstick for LightGBM."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    settings = get_settings().training
    numeric = [f for f in data.features if f not in data.categorical]
    encode = ColumnTransformer(
        [
            # keep_empty_features: an input with no value in the training rows (cross-sell's
            # prod_tenure_offered_months: nobody in the population holds the offered product)
            # stays a constant column instead of being dropped with a warning at every fit.
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
                ),
                numeric,
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                data.categorical,
            ),
        ]
    )
    baseline = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=1000))])
    train = drawn(train, settings.baseline_max_rows)
    return baseline.fit(_as_objects(train[data.features], data.categorical), train["label"])


def _as_objects(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categoricals as plain objects with NaN for missing (what the sklearn imputer expects)."""
    frame = frame.copy()
    for c in categorical:
        frame[c] = frame[c].astype(object).where(frame[c].notna(), np.nan)
    return frame


def calibrate(estimator, valid: pd.DataFrame, features: list[str]):
    """Platt scaling of the frozen booster on the validation snapshots (keeps the ranking)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    calibrator = CalibratedClassifierCV(FrozenEstimator(estimator), method="sigmoid")
    return calibrator.fit(valid[features], valid["label"])


def monotone_map(definition: ModelDefinition, features: list[str]) -> dict[str, int]:
    """The constrained features and their direction (+1 / -1); unconstrained ones are left out."""
    constraints = zip(features, definition.monotone_constraints(features), strict=True)
    return {f: c for f, c in constraints if c}


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in values.items()}


def compare_with_oracle(
    definition: ModelDefinition, test: pd.DataFrame, probability: np.ndarray, split: OutOfTimeSplit
) -> dict[str, float]:
    """Oracle AUC on the same test rows as the model (the test snapshot, or every cross-validated
    row), and the gap (oracle minus model)."""
    if not definition.oracle_outcome:
        return {}
    snapshots = [*split.train, *split.valid] if split.cross_validated else [split.test]
    oracle = oracle_probabilities(definition.oracle_outcome, snapshots)
    if oracle is None:
        return {}
    keys = [*ENTITY, *definition.key_features]
    scored = test[keys + ["label"]].assign(model_probability=probability)
    matched = scored.merge(oracle, on=keys, how="inner")
    if matched.empty or matched["label"].nunique() < 2:
        return {"oracle_coverage": len(matched) / max(len(scored), 1)}
    oracle_auc = metrics.roc_auc(matched["label"], matched["oracle_probability"])
    model_auc = metrics.roc_auc(matched["label"], matched["model_probability"])
    return {
        "oracle_auc": oracle_auc,
        "oracle_model_auc": model_auc,
        "oracle_gap": oracle_auc - model_auc,
        "oracle_brier": metrics.brier(matched["label"], matched["oracle_probability"]),
        "oracle_coverage": len(matched) / len(scored),
    }


def _champion_metric(client, definition: ModelDefinition, test: pd.DataFrame, split) -> tuple:
    """The current champion's promotion metric, re-scored on *these* test rows when it can be.

    Returns ``(version, value, how)``; ``version`` is None when there is no champion.
    """
    from training.registry import current_champion, load_scoring_model

    champion = current_champion(client, definition.name)
    if champion is None:
        return None, None, "no champion"
    if split.cross_validated:  # its in-sample scores on these rows would flatter it
        logged = client.get_run(champion.run_id).data
        value = logged.metrics.get(f"test_{definition.promotion_metric}")
        return champion, value, f"champion v{champion.version}'s logged metric (cross-validated)"
    try:
        scoring_model = load_scoring_model(f"models:/{champion.name}/{champion.version}")
        scores = scoring_model.predict_proba(test)
        value = metrics.classification_metrics(test["label"], scores)[definition.promotion_metric]
        return champion, value, f"champion v{champion.version} re-scored on test {split.test}"
    except Exception as exc:  # a champion trained on other features cannot score these rows
        logged = client.get_run(champion.run_id).data
        value = logged.metrics.get(f"test_{definition.promotion_metric}")
        snapshot = logged.tags.get("test_snapshot", "?")
        how = (
            f"champion v{champion.version} could not re-score ({type(exc).__name__}); "
            f"using its logged metric on test {snapshot}"
        )
        return champion, value, how


def _pip_requirements() -> list[str]:
    names = ["mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "shap"]
    return [f"{name}=={installed_version(name)}" for name in names]


# --- the steps ---------------------------------------------------------------------------------


@dataclass
class PreparedData:
    """Step 1, *prepare*: the out-of-time split and its labelled rows in the model's encoding."""

    definition: ModelDefinition
    raw_dir: Path
    split: OutOfTimeSplit
    #: Every labelled row (``role`` says train / valid / test), features already encoded.
    data: TrainingSet
    categories: dict[str, list[str]]
    #: Product-aligned inputs (cross-sell): the key column and the templates, or None / {}.
    alignment_key: str | None
    alignment: dict[str, dict[str, str]]
    #: Which raw files the run saw (:func:`data_fingerprint`).
    fingerprint: str
    train: pd.DataFrame
    valid: pd.DataFrame
    #: The test snapshot's rows; under cross-validation every labelled row (each scored by the
    #: folds that did not train on it).
    test: pd.DataFrame
    #: The train then the validation rows: what a refit after early stopping trains on.
    seen: pd.DataFrame
    #: Where the labels came from (derived rule, the bank's events or its decided cases).
    source: LabelSource | None = None
    #: Trained as if the data ended at this month start (None: on all of it).
    as_of: date | None = None


@dataclass
class FittedModels:
    """Step 2, *fit*: the scoring model (booster, calibrator, scorecard) and the baseline."""

    scoring_model: ScoringModel
    baseline: Any  # sklearn Pipeline: impute, scale, one-hot, logistic regression
    best_iteration: int
    #: Whether the booster was refitted on train + validation rows after early stopping.
    refit: bool
    #: Validation probabilities of the early-stopped booster (calibrated when the model is).
    p_valid: np.ndarray
    #: The WoE scorecard challenger (credit risk), fitted on the same training rows.
    challenger: ScorecardChallenger | None = None


@dataclass
class Evaluation:
    """Step 3, *evaluate*: the metrics on the test snapshot and the scores behind them."""

    metrics: dict[str, float]
    p_test: np.ndarray
    p_train: np.ndarray
    p_baseline: np.ndarray
    lift: pd.DataFrame
    calibration: pd.DataFrame
    #: The challenger's probabilities on the same test rows (None without a challenger).
    p_challenger: np.ndarray | None = None
    #: The training population (score and every input), kept with the model for monitoring.
    reference: StabilityReference | None = None
    #: PSI of the score and CSI of every input, train -> test (:meth:`StabilityReference.compare`).
    stability: pd.DataFrame | None = None
    #: ``feature, importance`` (share of the booster's total gain), largest first.
    importance: pd.DataFrame | None = None


@dataclass
class LoggedRun:
    """Step 4, *log*: the MLflow run and the registered model version it created."""

    run_id: str
    registered_name: str
    version: str


@dataclass
class Promotion:
    """Step 5, *promote*: whether the champion alias moved, and why."""

    promoted: bool
    reason: str
    #: The version the alias pointed at before this run (None: there was no champion).
    champion_before: str | None
    champion_value: float | None


def plan_split(definition: ModelDefinition, snapshots: list, source: LabelSource) -> OutOfTimeSplit:
    """Out of time when the data allow it; repeated cross-validation (saying why) when they hold
    too few snapshots, or decided cases (dated by the bank, not a monthly panel)."""
    config = get_settings().training
    if source.kind == "cases":
        why = "decided cases are dated by the bank, not snapshots of the whole book"
        return cross_validation_split(
            snapshots, definition.horizon_months, config.holdout_share, why
        )
    try:
        return split_snapshots(
            snapshots,
            definition.horizon_months,
            validation=config.validation_snapshots,
            min_train=config.min_train_snapshots,
            max_train=config.max_train_snapshots,
            holdout_share=config.holdout_share,
        )
    except ValueError as error:
        return cross_validation_split(
            snapshots, definition.horizon_months, config.holdout_share, str(error)
        )


def prepare(
    definition: ModelDefinition,
    raw_dir: Path,
    source: TrainingSetSource,
    progress: Callable[[str], None] | None = None,
    as_of: date | None = None,
) -> PreparedData:
    """Split the snapshots (out of time, or for cross-validation), label them, join their features
    and encode them.

    ``as_of`` (a month start) trains as if the data ended there: only snapshots whose outcome
    window closes by then are used (features never look past their snapshot), which is how a
    past model is rebuilt and later back-tested on the months it never saw.
    """
    config = get_settings().training
    step = progress or (lambda _: None)
    step("split")
    labels_from = label_source(definition, raw_dir)
    snapshots = candidate_snapshots(
        definition.horizon_months, config.warmup_months, raw_dir, labels_from
    )
    if as_of is not None:
        snapshots = fully_labelled(snapshots, definition.horizon_months, as_of)
    split = plan_split(definition, snapshots, labels_from)

    step("labels + features")
    labels = labelled_rows(definition, split, raw_dir, labels_from)
    test_events = int(labels.loc[labels["role"] == "test", "label"].sum())
    if not split.cross_validated and test_events < config.min_test_events:
        why = (
            f"only {test_events} events in the test snapshot {split.test} (out-of-time tests "
            f"need training.min_test_events = {config.min_test_events})"
        )
        months = [*split.train, *split.valid, split.test]
        split = cross_validation_split(months, definition.horizon_months, split.holdout_share, why)
        labels["role"] = split.roles(labels)
    data = assemble_training_set(definition, split, labels, source)
    del labels
    alignment_key = definition.key_features[0] if definition.align_by_key else None
    alignment = {}
    if alignment_key:
        levels = sorted(data.frame[alignment_key].dropna().astype(str).unique())
        alignment = alignment_templates(data.features, levels)
        data.frame = add_aligned_columns(data.frame, alignment_key, alignment)
        data.features = [*data.features, *alignment]
    categories = categorical_levels(data.part("train"), data.categorical)
    encode_in_place(data.frame, data.features, categories)
    # Slices of the frame, not copies (see TrainingSet.part).
    train, valid, seen = data.part("train"), data.part("valid"), data.part("train", "valid")
    test = seen if split.cross_validated else data.part("test")
    for role, part in (("train", train), ("valid", valid), ("test", test)):
        if part["label"].nunique() < 2:
            raise ValueError(
                f"{role} rows hold only one class ({len(part)} rows, {int(part['label'].sum())} "
                "events): too little data to train"
            )
    return PreparedData(
        definition=definition,
        raw_dir=raw_dir,
        split=split,
        data=data,
        categories=categories,
        alignment_key=alignment_key,
        alignment=alignment,
        fingerprint=data_fingerprint(raw_dir),
        train=train,
        valid=valid,
        test=test,
        seen=seen,
        source=labels_from,
        as_of=as_of,
    )


def refits(definition: ModelDefinition, split: OutOfTimeSplit, train_rows: int) -> bool:
    """Whether the early-stopped booster is refitted on train + validation rows.

    Only when nothing downstream needs the validation rows unseen (the calibrator does, and so
    does a test set restricted to held-out customers), and only below ``training.refit_max_rows``
    training rows: the refit costs a second whole fit, and on a big set the validation rows it
    adds (about a tenth more) no longer move the model."""
    config = get_settings().training
    return (
        config.refit
        and not definition.calibrate
        and not split.test_holdout_only
        and train_rows < config.refit_max_rows
    )


def fit(prepared: PreparedData, lgbm_overrides: dict[str, Any] | None = None) -> FittedModels:
    """LightGBM (early-stopped, refitted or calibrated as the definition says) and the baseline."""
    definition, data, split = prepared.definition, prepared.data, prepared.split
    train, valid = prepared.train, prepared.valid
    estimator = fit_lightgbm(definition, data, train, valid, lgbm_overrides)
    best_iteration = estimator.best_iteration_
    p_valid = estimator.predict_proba(valid[data.features])[:, 1]  # before any refit: unseen
    refit = refits(definition, split, len(train))
    if refit:
        estimator = refit_on_all_rows(estimator, prepared.seen, data.features)
    calibrator = calibrate(estimator, valid, data.features) if definition.calibrate else None
    if calibrator is not None:
        p_valid = calibrator.predict_proba(valid[data.features])[:, 1]
    scoring_model = ScoringModel(
        name=definition.name,
        features=data.features,
        categories=prepared.categories,
        estimator=estimator,
        calibrator=calibrator,
        scorecard=Scorecard.from_settings() if definition.scorecard else None,
        alignment_key=prepared.alignment_key,
        alignment=prepared.alignment,
        metadata={"feature_service": definition.feature_service, "test_snapshot": str(split.test)},
    )
    challenger = None
    if definition.scorecard_challenger:
        challenger = fit_scorecard_challenger(
            train,
            data.features,
            data.categorical,
            monotone_map(definition, data.features),
            Scorecard.from_settings(),
        )
    return FittedModels(
        scoring_model=scoring_model,
        baseline=logistic_baseline(data, train),
        best_iteration=best_iteration,
        refit=refit,
        p_valid=p_valid,
        challenger=challenger,
    )


def gain_importance(booster) -> pd.DataFrame:
    """Each input's share of the booster's total split gain, largest first."""
    gain = booster.feature_importance(importance_type="gain")
    total = gain.sum()  # 0 for a booster without a single split
    share = gain / total if total > 0 else np.zeros_like(gain)
    table = pd.DataFrame({"feature": booster.feature_name(), "importance": share})
    return table.sort_values(["importance", "feature"], ascending=[False, True], ignore_index=True)


@dataclass
class CrossValidation:
    """Out-of-fold scores of every labelled row (mean over the repeats), and each repeat's AUC."""

    p_model: np.ndarray
    p_baseline: np.ndarray
    p_challenger: np.ndarray | None
    repeat_aucs: list[float]
    folds: int
    repeats: int


def cross_validate(
    prepared: PreparedData, lgbm_overrides: dict[str, Any] | None = None
) -> CrossValidation:
    """Repeated stratified cross-validation of the whole :func:`fit` (early stopping, calibration,
    baseline and challenger included): each fold's rows are scored by models that never saw their
    customer (customers are grouped per fold; within the other folds, the held-out customers
    validate as in a full run)."""
    from dataclasses import replace

    from sklearn.model_selection import StratifiedGroupKFold

    config = get_settings().training
    rows = prepared.test.reset_index(drop=True)
    n, repeats = len(rows), config.cv_repeats
    scores = {name: np.zeros((repeats, n)) for name in ("model", "baseline", "challenger")}
    features = prepared.data.features
    for repeat in range(repeats):
        folds = StratifiedGroupKFold(
            config.cv_folds, shuffle=True, random_state=config.seed + repeat
        )
        for fitting, scored in folds.split(rows, rows["label"], groups=rows["customer_id"]):
            rest = rows.iloc[fitting]
            held = holdout_mask(rest["customer_id"], prepared.split.holdout_share)
            train, valid = rest[~held], rest[held]
            seen = pd.concat([train, valid])
            fold = replace(prepared, train=train, valid=valid, test=rows.iloc[scored], seen=seen)
            fitted = fit(fold, lgbm_overrides)
            part = rows.iloc[scored]
            scores["model"][repeat, scored] = fitted.scoring_model.predict_proba(part)
            scores["baseline"][repeat, scored] = fitted.baseline.predict_proba(
                _as_objects(part[features], prepared.data.categorical)
            )[:, 1]
            if fitted.challenger is not None:
                scores["challenger"][repeat, scored] = fitted.challenger.predict_proba(part)
    return CrossValidation(
        p_model=scores["model"].mean(axis=0),
        p_baseline=scores["baseline"].mean(axis=0),
        p_challenger=scores["challenger"].mean(axis=0)
        if prepared.definition.scorecard_challenger
        else None,
        repeat_aucs=[metrics.roc_auc(rows["label"], p) for p in scores["model"]],
        folds=config.cv_folds,
        repeats=repeats,
    )


def evaluate(
    prepared: PreparedData,
    fitted: FittedModels,
    lgbm_overrides: dict[str, Any] | None = None,
) -> Evaluation:
    """The champion-to-be and the baseline on the test snapshot (and the oracle, if any), with a
    bootstrap interval of the AUC; under cross-validation, on every row's out-of-fold scores."""
    definition, data, test = prepared.definition, prepared.data, prepared.test
    config = get_settings().training
    scoring_model = fitted.scoring_model
    reference_rows = drawn(prepared.train, config.reference_rows)
    p_train = scoring_model.predict_proba(reference_rows)
    p_challenger = None
    if prepared.split.cross_validated:
        folds = cross_validate(prepared, lgbm_overrides)
        p_test, p_baseline, p_challenger = folds.p_model, folds.p_baseline, folds.p_challenger
        cv = {
            "cv_folds": float(folds.folds),
            "cv_repeats": float(folds.repeats),
            "cv_auc_repeat_min": float(np.min(folds.repeat_aucs)),
            "cv_auc_repeat_max": float(np.max(folds.repeat_aucs)),
        }
    else:
        p_test = scoring_model.predict_proba(test)
        p_baseline = fitted.baseline.predict_proba(
            _as_objects(test[data.features], data.categorical)
        )[:, 1]
        if fitted.challenger is not None:
            p_challenger = fitted.challenger.predict_proba(test)
        cv = {}
    low, high = metrics.auc_interval(
        test["label"], p_test, test["customer_id"], config.bootstrap_rounds, seed=config.seed
    )
    results: dict[str, float] = {
        **_prefixed("test_", metrics.classification_metrics(test["label"], p_test)),
        "test_auc_ci_low": low,
        "test_auc_ci_high": high,
        **_prefixed(
            "valid_", metrics.classification_metrics(prepared.valid["label"], fitted.p_valid)
        ),
        **_prefixed("baseline_test_", metrics.classification_metrics(test["label"], p_baseline)),
        "psi_train_test": metrics.psi(p_train, p_test),
        "best_iteration": float(fitted.best_iteration),
        "n_trees": float(scoring_model.booster.num_trees()),
        **cv,
    }
    results["test_auc_minus_baseline"] = results["test_auc"] - results["baseline_test_auc"]
    if definition.calibrate and not prepared.split.cross_validated:
        raw = scoring_model.raw_proba(test)
        results["test_brier_uncalibrated"] = metrics.brier(test["label"], raw)
    for key in definition.key_features:  # per-product AUC for the pooled cross-sell model
        for level, rows in test.groupby(key, observed=True):
            results[f"test_auc_{key}_{level}"] = metrics.roc_auc(
                rows["label"], p_test[test.index.get_indexer(rows.index)]
            )
    results.update(compare_with_oracle(definition, test, p_test, prepared.split))
    if definition.scorecard:
        points = scoring_model.points(p_test)
        results["test_points_median"] = float(np.median(points))
    reference = StabilityReference.of(reference_rows, data.features, p_train)
    results["reference_rows"] = float(reference.rows)  # the model document says how many
    if p_challenger is not None:
        challenger_metrics = metrics.classification_metrics(test["label"], p_challenger)
        results.update(_prefixed("challenger_test_", challenger_metrics))
        results["test_auc_minus_challenger"] = results["test_auc"] - challenger_metrics["auc"]
    return Evaluation(
        metrics=results,
        p_test=p_test,
        p_train=p_train,
        p_baseline=p_baseline,
        lift=metrics.lift_table(test["label"], p_test),
        calibration=metrics.calibration_table(test["label"], p_test),
        p_challenger=p_challenger,
        reference=reference,
        stability=reference.compare(test, p_test),
        importance=gain_importance(scoring_model.booster),
    )


def run_params(
    prepared: PreparedData, fitted: FittedModels, lgbm_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The run's MLflow params: model, split, row counts, LightGBM and scorecard settings."""
    definition, data = prepared.definition, prepared.data
    params = {
        "model": definition.name,
        "horizon_months": definition.horizon_months,
        "feature_service": definition.feature_service,
        "n_features": len(data.features),
        "categorical_features": ",".join(data.categorical) or "-",
        "calibration": "platt" if definition.calibrate else "none",
        "refit_on_train_and_valid": fitted.refit,
        "promotion_metric": f"test_{definition.promotion_metric}",
        "promotion_min_improvement": definition.min_improvement,
        "rows_train": len(prepared.train),
        "rows_valid": len(prepared.valid),
        "rows_test": len(prepared.test),
        "customer_share": data.customer_share,
        "seed": get_settings().training.seed,
        "label_source": prepared.source.describe() if prepared.source else "derived",
        **prepared.split.as_params(),
        **_prefixed(
            "lgbm.", {**definition.lgbm_params_for(len(prepared.train)), **(lgbm_overrides or {})}
        ),
    }
    scorecard = fitted.scoring_model.scorecard
    if scorecard is not None:
        params.update(
            {
                "scorecard.base_points": scorecard.base_points,
                "scorecard.base_odds": scorecard.base_odds,
                "scorecard.points_to_double": scorecard.points_to_double,
            }
        )
    return params


def run_tags(prepared: PreparedData) -> dict[str, str]:
    """The run's MLflow tags: which data (fingerprint, raw folder, test snapshot) it saw."""
    definition, split, fingerprint = prepared.definition, prepared.split, prepared.fingerprint
    return {
        "model": definition.name,
        "feature_service": definition.feature_service,
        "data_snapshot": f"{fingerprint} (raw data through {split.test} + horizon)",
        "data_fingerprint": fingerprint,
        "raw_dir": str(prepared.raw_dir),
        "test_snapshot": "-" if split.cross_validated else str(split.test),
        "split_note": split.note or "full horizon gap",
        "evaluation": split.evaluation,
        "label_source": prepared.source.kind if prepared.source else "derived",
        "data_as_of": str(prepared.as_of or "all data"),
    }


def _log_figures(prepared: PreparedData, fitted: FittedModels, evaluation: Evaluation) -> None:
    """ROC, calibration, lift/gain and the SHAP summary as PNGs in the active run."""
    import matplotlib.pyplot as plt
    import mlflow

    from training import plots

    test, features = prepared.test, prepared.data.features
    config = get_settings().training
    title = f"{prepared.definition.name} · test {prepared.split.test}"
    figures = {
        "plots/roc.png": plots.roc_figure(
            test["label"],
            {"LightGBM": evaluation.p_test, "logistic baseline": evaluation.p_baseline},
            title,
        ),
        "plots/calibration.png": plots.calibration_figure(evaluation.calibration, title),
        "plots/lift_gain.png": plots.lift_figure(evaluation.lift, title),
    }
    sample = drawn(test, config.shap_rows)
    try:
        figures["plots/shap_summary.png"] = plots.shap_summary_figure(
            fitted.scoring_model.booster, sample[features], title
        )
    except Exception as exc:  # an explanation plot must not sink a good model
        mlflow.set_tag("shap_error", f"{type(exc).__name__}: {exc}"[:500])
    for path, figure in figures.items():
        mlflow.log_figure(figure, path)
        plt.close(figure)


def _log_challenger(challenger: ScorecardChallenger) -> None:
    """The scorecard challenger's points table, characteristics and fitted model (not registered:
    it is never promoted)."""
    import mlflow
    import mlflow.sklearn

    mlflow.log_table(challenger.points_table(), "tables/scorecard_points.json")
    mlflow.log_param("challenger.characteristics", ",".join(challenger.characteristics))
    mlflow.sklearn.log_model(
        challenger.scorecard,
        name="challenger_scorecard",
        pip_requirements=[f"optbinning=={installed_version('optbinning')}", *_pip_requirements()],
        serialization_format="cloudpickle",
    )


def log_run(
    prepared: PreparedData,
    fitted: FittedModels,
    evaluation: Evaluation,
    lgbm_overrides: dict[str, Any] | None = None,
) -> LoggedRun:
    """Params, metrics, tables, plots and the pyfunc model into the *active* MLflow run; the
    model is registered as a new version."""
    import mlflow
    from mlflow.models import infer_signature

    from training.pyfunc import ScoringPyfunc
    from training.registry import register_version, registered_name

    definition, data = prepared.definition, prepared.data
    scoring_model = fitted.scoring_model
    name = registered_name(definition.name)
    monotone = monotone_map(definition, data.features)
    mlflow.set_tags(run_tags(prepared))
    mlflow.log_params(run_params(prepared, fitted, lgbm_overrides))
    mlflow.log_metrics({k: v for k, v in evaluation.metrics.items() if np.isfinite(v)})
    mlflow.log_dict(
        {"features": data.features, "categories": prepared.categories, "monotone": monotone},
        "model_inputs.json",
    )
    mlflow.log_table(evaluation.lift, "tables/lift_test.json")
    mlflow.log_table(evaluation.calibration, "tables/calibration_test.json")
    _log_figures(prepared, fitted, evaluation)
    if fitted.challenger is not None:
        _log_challenger(fitted.challenger)
    mlflow.log_dict(evaluation.reference.to_dict(), REFERENCE_ARTIFACT)
    log_document_inputs(prepared, fitted, evaluation)

    example = _as_objects(prepared.test[data.features].head(5), data.categorical)
    model_info = mlflow.pyfunc.log_model(
        name="model",
        python_model=ScoringPyfunc(scoring_model),
        signature=infer_signature(example, scoring_model.score_frame(example)),
        input_example=example,
        pip_requirements=_pip_requirements(),
    )
    return LoggedRun(
        run_id=mlflow.active_run().info.run_id,
        registered_name=name,
        version=register_version(name, model_info.model_uri, model_info.model_id),
    )


def promote(client, prepared: PreparedData, evaluation: Evaluation, logged: LoggedRun) -> Promotion:
    """Move the champion alias to the new version if it wins on the same test rows; record the
    decision and its reason on the (active) run and the model version."""
    import mlflow

    definition, split = prepared.definition, prepared.split
    name, version = logged.registered_name, logged.version
    champion, champion_value, how = _champion_metric(client, definition, prepared.test, split)
    candidate_value = evaluation.metrics[f"test_{definition.promotion_metric}"]
    gate = definition.quality_gate(evaluation.metrics)
    decision: PromotionDecision = (
        definition.decide_promotion(candidate_value, champion_value) if gate.promote else gate
    )
    if not gate.promote:
        reason = f"{gate.reason}; registered only"
    else:  # how the champion was measured; with no champion the decision says so already
        reason = decision.reason if champion is None else f"{decision.reason} [{how}]"
    if decision.promote:
        client.set_registered_model_alias(name, get_settings().training.champion_alias, version)
    mlflow.set_tags(
        {
            "promotion.decision": "promoted" if decision.promote else "kept champion",
            "promotion.reason": reason,
        }
    )
    mlflow.log_param("promotion_reason", reason[:6000])
    if champion_value is not None:
        mlflow.log_metric("champion_test_metric", champion_value)
    for key, value in {
        "promotion.decision": "promoted" if decision.promote else "not promoted",
        "promotion.reason": reason,
        "test_snapshot": str(split.test),
        "feature_service": definition.feature_service,
        "data_fingerprint": prepared.fingerprint,
    }.items():
        client.set_model_version_tag(name, version, key, value)
    return Promotion(
        promoted=decision.promote,
        reason=reason,
        champion_before=None if champion is None else str(champion.version),
        champion_value=champion_value,
    )


def train_model(
    model: str | ModelDefinition,
    *,
    raw_dir: Path | None = None,
    training_set: TrainingSetSource | None = None,
    lgbm_overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    as_of: date | None = None,
) -> TrainingResult:
    """Prepare, fit, evaluate, log, register and (maybe) promote one model.

    ``training_set`` defaults to the feature store (``features.training_set.get_training_set``);
    ``lgbm_overrides`` change LightGBM settings for this run only (they are logged); ``as_of``
    trains as if the data ended at that month start (see :func:`prepare`).
    """
    import mlflow

    from training.registry import configure_mlflow, ensure_experiment, registered_name

    definition = model if isinstance(model, ModelDefinition) else get_definition(model)
    raw_dir = Path(raw_dir or get_settings().raw_dir)
    step = progress or (lambda _: None)

    prepared = prepare(definition, raw_dir, training_set or feast_training_set(), step, as_of)
    step("fit")
    fitted = fit(prepared, lgbm_overrides)
    step("evaluate")
    evaluation = evaluate(prepared, fitted, lgbm_overrides)
    step("log to MLflow")
    client = configure_mlflow()
    experiment_id = ensure_experiment(client, registered_name(definition.name))
    run_name = f"{definition.name}-{prepared.fingerprint}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name):
        logged = log_run(prepared, fitted, evaluation, lgbm_overrides)
        step("promotion")
        promotion = promote(client, prepared, evaluation, logged)
        step("document")
        html = document_html(client, logged.registered_name, logged.version)
        mlflow.log_text(html, DOCUMENT_ARTIFACT)

    result = TrainingResult(
        model=definition.name,
        run_id=logged.run_id,
        registered_name=logged.registered_name,
        version=logged.version,
        metrics=evaluation.metrics,
        promoted=promotion.promoted,
        reason=promotion.reason,
        split=prepared.split,
        extra={
            "champion_before": promotion.champion_before,
            "label_source": prepared.source.describe() if prepared.source else "derived",
        },
    )
    del prepared, fitted, evaluation
    release_memory()
    return result


def release_memory() -> None:
    """Hand the memory of a finished model back to the operating system.

    A model's frames are freed when it is done, but glibc keeps the freed pages for the process to
    reuse, so ``train all`` at 1M customers held 15.5 GB at its end where churn alone peaks at
    9.6 GB: each model's peak was added to what the one before had left. Elsewhere than glibc
    there is no ``malloc_trim`` and nothing to do.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
