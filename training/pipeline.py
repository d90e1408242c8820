"""The one training pipeline every model definition runs through.

``train_model("churn")`` does, in order:

1. pick the fully labelled snapshots and split them out of time (:mod:`training.split`);
2. build point-in-time labels from raw data and join Feast features (:mod:`training.dataset`);
3. fit LightGBM with early stopping on the validation snapshots (monotone where the definition
   says so), a logistic-regression baseline, and a Platt calibrator if the definition asks;
4. evaluate on the test snapshot: AUC, PR-AUC, KS, Gini, Brier, lift, calibration, PSI, and the
   synthetic oracle's AUC on the same rows when an oracle exists;
5. log everything to MLflow, register the model, and move the ``champion`` alias only if the new
   version beats the current champion on the promotion metric, re-scored on the same test rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmscore.settings import get_settings
from models import get_definition
from models.definition import ModelDefinition, PromotionDecision
from training import metrics
from training.alignment import add_aligned_columns, alignment_templates
from training.dataset import (
    ENTITY,
    TrainingSet,
    TrainingSetSource,
    assemble_training_set,
    candidate_snapshots,
    feast_training_set,
)
from training.oracle import oracle_probabilities
from training.scorecard import Scorecard
from training.scoring_model import ScoringModel, categorical_levels, prepare_features
from training.split import OutOfTimeSplit, split_snapshots

#: The steps reported to a progress callback, in order.
STEPS = ("split", "labels + features", "fit", "evaluate", "log to MLflow", "promotion")


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
            "baseline_auc": m.get("baseline_test_auc"),
            "oracle_auc": m.get("oracle_auc"),
            "gap": m.get("oracle_gap"),
            "ks": m.get("test_ks"),
            "brier": m.get("test_brier"),
            "top_decile_lift": m.get("test_top_decile_lift"),
            "champion": self.promoted,
        }


def data_fingerprint(raw_dir: Path) -> str:
    """A short hash of the raw files' names, sizes and modification times: which data a run saw."""
    digest = hashlib.sha1()
    for path in sorted(Path(raw_dir).rglob("*.parquet")):
        stat = path.stat()
        digest.update(f"{path.relative_to(raw_dir)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


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
    params = {**definition.lgbm_params, **(overrides or {})}
    stopping_rounds = int(params.pop("early_stopping_rounds"))
    estimator = lgb.LGBMClassifier(
        **params,
        monotone_constraints=definition.monotone_constraints(data.features),
        random_state=settings.seed,
        n_jobs=settings.n_jobs,
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
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
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
    if len(train) > settings.baseline_max_rows:
        train = train.sample(settings.baseline_max_rows, random_state=settings.seed)
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


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in values.items()}


def compare_with_oracle(
    definition: ModelDefinition, test: pd.DataFrame, probability: np.ndarray, split: OutOfTimeSplit
) -> dict[str, float]:
    """Oracle AUC on the same test rows as the model, and the gap (oracle minus model)."""
    oracle = oracle_probabilities(definition.oracle_outcome, [split.test])
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


def train_model(
    model: str | ModelDefinition,
    *,
    raw_dir: Path | None = None,
    training_set: TrainingSetSource | None = None,
    lgbm_overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Train, evaluate, log, register and (maybe) promote one model. See the module docstring.

    ``training_set`` defaults to the feature store (``features.training_set.get_training_set``);
    ``lgbm_overrides`` change LightGBM settings for this run only (they are logged).
    """
    import mlflow
    from mlflow.models import infer_signature

    from training import plots
    from training.pyfunc import ScoringPyfunc
    from training.registry import configure_mlflow, ensure_experiment, registered_name

    definition = model if isinstance(model, ModelDefinition) else get_definition(model)
    settings = get_settings()
    config = settings.training
    raw_dir = Path(raw_dir or settings.raw_dir)
    step = progress or (lambda _: None)

    step("split")
    snapshots = candidate_snapshots(definition.horizon_months, config.warmup_months, raw_dir)
    split = split_snapshots(
        snapshots,
        definition.horizon_months,
        validation=config.validation_snapshots,
        min_train=config.min_train_snapshots,
        max_train=config.max_train_snapshots,
        holdout_share=config.holdout_share,
    )

    step("labels + features")
    data = assemble_training_set(definition, split, raw_dir, training_set or feast_training_set())
    alignment_key = definition.key_features[0] if definition.align_by_key else None
    alignment = {}
    if alignment_key:
        levels = sorted(data.frame[alignment_key].dropna().astype(str).unique())
        alignment = alignment_templates(data.features, levels)
        data.frame = add_aligned_columns(data.frame, alignment_key, alignment)
        data.features = [*data.features, *alignment]
    categories = categorical_levels(data.part("train"), data.categorical)
    # Swap the raw feature columns for the model's encoding without holding a third copy.
    prepared = prepare_features(data.frame, data.features, categories)
    data.frame = pd.concat([data.frame.drop(columns=data.features), prepared], axis=1)
    del prepared
    frame = data.frame
    train, valid, test = data.part("train"), data.part("valid"), data.part("test")
    for role, part in (("train", train), ("valid", valid), ("test", test)):
        if part["label"].nunique() < 2:
            raise ValueError(f"{role} snapshots hold only one class: too little data to train")

    step("fit")
    estimator = fit_lightgbm(definition, data, train, valid, lgbm_overrides)
    best_iteration = estimator.best_iteration_
    p_valid = estimator.predict_proba(valid[data.features])[:, 1]  # before any refit: unseen
    # Refit only when nothing downstream needs the validation rows unseen: the calibrator does,
    # and so does a test set restricted to held-out customers.
    refit = config.refit and not definition.calibrate and not split.test_holdout_only
    if refit:
        seen = frame[frame["event_timestamp"].isin(pd.to_datetime([*split.train, *split.valid]))]
        estimator = refit_on_all_rows(estimator, seen, data.features)
    calibrator = calibrate(estimator, valid, data.features) if definition.calibrate else None
    if calibrator is not None:
        p_valid = calibrator.predict_proba(valid[data.features])[:, 1]
    scoring_model = ScoringModel(
        name=definition.name,
        features=data.features,
        categories=categories,
        estimator=estimator,
        calibrator=calibrator,
        scorecard=Scorecard.from_settings() if definition.scorecard else None,
        alignment_key=alignment_key,
        alignment=alignment,
        metadata={"feature_service": definition.feature_service, "test_snapshot": str(split.test)},
    )
    baseline = logistic_baseline(data, train)

    step("evaluate")
    p_test = scoring_model.predict_proba(test)
    p_train = scoring_model.predict_proba(train)
    p_baseline = baseline.predict_proba(_as_objects(test[data.features], data.categorical))[:, 1]
    results: dict[str, float] = {
        **_prefixed("test_", metrics.classification_metrics(test["label"], p_test)),
        **_prefixed("valid_", metrics.classification_metrics(valid["label"], p_valid)),
        **_prefixed("baseline_test_", metrics.classification_metrics(test["label"], p_baseline)),
        "psi_train_test": metrics.psi(p_train, p_test),
        "best_iteration": float(best_iteration),
        "n_trees": float(estimator.booster_.num_trees()),
    }
    results["test_auc_minus_baseline"] = results["test_auc"] - results["baseline_test_auc"]
    if definition.calibrate:
        raw = scoring_model.raw_proba(test)
        results["test_brier_uncalibrated"] = metrics.brier(test["label"], raw)
    for key in definition.key_features:  # per-product AUC for the pooled cross-sell model
        for level, rows in test.groupby(key, observed=True):
            results[f"test_auc_{key}_{level}"] = metrics.roc_auc(
                rows["label"], p_test[test.index.get_indexer(rows.index)]
            )
    results.update(compare_with_oracle(definition, test, p_test, split))
    if definition.scorecard:
        points = scoring_model.points(p_test)
        results["test_points_median"] = float(np.median(points))

    step("log to MLflow")
    client = configure_mlflow()
    experiment_id = ensure_experiment(client, definition.name)
    name = registered_name(definition.name)
    fingerprint = data_fingerprint(raw_dir)
    params = {
        "model": definition.name,
        "horizon_months": definition.horizon_months,
        "feature_service": definition.feature_service,
        "n_features": len(data.features),
        "categorical_features": ",".join(data.categorical) or "-",
        "calibration": "platt" if definition.calibrate else "none",
        "refit_on_train_and_valid": refit,
        "promotion_metric": f"test_{definition.promotion_metric}",
        "promotion_min_improvement": definition.min_improvement,
        "rows_train": len(train),
        "rows_valid": len(valid),
        "rows_test": len(test),
        "customer_share": data.customer_share,
        "seed": config.seed,
        **split.as_params(),
        **_prefixed("lgbm.", {**definition.lgbm_params, **(lgbm_overrides or {})}),
    }
    constraints = dict(
        zip(data.features, definition.monotone_constraints(data.features), strict=True)
    )
    monotone = {f: c for f, c in constraints.items() if c}
    if definition.scorecard:
        sc = scoring_model.scorecard
        params.update(
            {
                "scorecard.base_points": sc.base_points,
                "scorecard.base_odds": sc.base_odds,
                "scorecard.points_to_double": sc.points_to_double,
            }
        )
    tags = {
        "model": definition.name,
        "feature_service": definition.feature_service,
        "data_snapshot": f"{fingerprint} (raw data through {split.test} + horizon)",
        "data_fingerprint": fingerprint,
        "raw_dir": str(raw_dir),
        "test_snapshot": str(split.test),
        "split_note": split.note or "full horizon gap",
    }
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"{definition.name}-{fingerprint}"
    ) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(params)
        mlflow.log_metrics({k: v for k, v in results.items() if np.isfinite(v)})
        mlflow.log_dict(
            {"features": data.features, "categories": categories, "monotone": monotone},
            "model_inputs.json",
        )
        lift = metrics.lift_table(test["label"], p_test)
        calibration = metrics.calibration_table(test["label"], p_test)
        mlflow.log_table(lift, "tables/lift_test.json")
        mlflow.log_table(calibration, "tables/calibration_test.json")
        title = f"{definition.name} · test {split.test}"
        figures = {
            "plots/roc.png": plots.roc_figure(
                test["label"], {"LightGBM": p_test, "logistic baseline": p_baseline}, title
            ),
            "plots/calibration.png": plots.calibration_figure(calibration, title),
            "plots/lift_gain.png": plots.lift_figure(lift, title),
        }
        sample = test.sample(min(config.shap_rows, len(test)), random_state=config.seed)
        try:
            figures["plots/shap_summary.png"] = plots.shap_summary_figure(
                estimator.booster_, sample[data.features], title
            )
        except Exception as exc:  # an explanation plot must not sink a good model
            mlflow.set_tag("shap_error", f"{type(exc).__name__}: {exc}"[:500])
        import matplotlib.pyplot as plt

        for path, figure in figures.items():
            mlflow.log_figure(figure, path)
            plt.close(figure)

        example = _as_objects(test[data.features].head(5), data.categorical)
        model_info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ScoringPyfunc(scoring_model),
            signature=infer_signature(example, scoring_model.score_frame(example)),
            input_example=example,
            registered_model_name=name,
            pip_requirements=_pip_requirements(),
        )
        version = str(model_info.registered_model_version)

        step("promotion")
        champion, champion_value, how = _champion_metric(client, definition, test, split)
        candidate_value = results[f"test_{definition.promotion_metric}"]
        decision: PromotionDecision = definition.decide_promotion(candidate_value, champion_value)
        reason = f"{decision.reason} [{how}]"
        if decision.promote:
            client.set_registered_model_alias(name, config.champion_alias, version)
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
            "data_fingerprint": fingerprint,
        }.items():
            client.set_model_version_tag(name, version, key, value)

    return TrainingResult(
        model=definition.name,
        run_id=run.info.run_id,
        registered_name=name,
        version=version,
        metrics=results,
        promoted=decision.promote,
        reason=reason,
        split=split,
        extra={"champion_before": None if champion is None else str(champion.version)},
    )
