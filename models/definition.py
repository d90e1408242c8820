"""What makes one scoring model different from another — and nothing else.

A :class:`ModelDefinition` names the label (and its horizon), the Feast feature service, the
LightGBM settings, the monotone constraints, the promotion rule, and whether the model is
calibrated and scaled to scorecard points. The shared pipeline in :mod:`training.pipeline` reads
a definition and does the rest identically for every model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from types import MappingProxyType
from typing import Any

#: LightGBM settings every model starts from; a definition overrides only what it needs.
#: Small, regularised trees: the signals are mostly smooth, and early stopping on held-out customers
#: picks the number of trees.
BASE_LGBM_PARAMS: Mapping[str, Any] = MappingProxyType(
    {
        "n_estimators": 3000,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 300,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.5,
        "reg_lambda": 5.0,
        "max_bin": 127,
        "early_stopping_rounds": 100,
    }
)


@dataclass(frozen=True)
class PromotionDecision:
    """Whether a candidate replaces the champion, and the sentence that says why."""

    promote: bool
    reason: str


@dataclass(frozen=True)
class ModelDefinition:
    """One scoring model: its label, features, estimator settings and promotion rule."""

    #: Short name: the derived label (:func:`training.labels.build_labels`), the CLI argument and
    #: the suffix of the MLflow experiment and registered model (``crmscore-<name>``).
    name: str
    description: str
    #: Months after the snapshot in which the event counts.
    horizon_months: int
    #: Feast feature service the training set is read from.
    feature_service: str
    #: Who is labelled at a snapshot (:data:`training.labels.POPULATIONS`): ``active`` (an open
    #: account), ``offers`` (customer x product not held), ``credit`` (an open credit account).
    population: str = "active"
    #: The bank's name for this outcome in its ``outcomes`` table; rows of it (events or decided
    #: cases) are the label instead of the derived rule (``training.label_source``).
    outcome: str = ""
    #: The oracle's ``outcome`` value for this label (synthetic data only; empty: no oracle).
    oracle_outcome: str = ""
    #: The model document's words (SR 11-7: purpose and use, the label and its population, the
    #: limitations a validator should know): plain sentences for risk officers.
    intended_use: str = ""
    label_definition: str = ""
    population_text: str = ""
    limitations: tuple[str, ...] = ()
    #: Overrides of :data:`BASE_LGBM_PARAMS`.
    lgbm_overrides: Mapping[str, Any] = field(default_factory=dict)
    #: Label-frame columns that are also model inputs (cross_sell: ``product``).
    key_features: tuple[str, ...] = ()
    #: Add "aligned" inputs that read each row's own key column (:mod:`training.alignment`).
    align_by_key: bool = False
    #: Known directions, by feature-name pattern (``fnmatch``): +1 = the score may only rise with
    #: the feature, -1 = only fall. Resolved against the actual feature list at fit time.
    monotone: Mapping[str, int] = field(default_factory=dict)
    #: Test-set metric the champion is judged on, and the margin a challenger must beat it by.
    promotion_metric: str = "auc"
    higher_is_better: bool = True
    min_improvement: float = 0.0
    #: Fit a Platt (sigmoid) calibrator on the validation snapshots.
    calibrate: bool = False
    #: Also report a score in points (``training.scorecard``).
    scorecard: bool = False
    #: Also fit the traditional WoE scorecard (``training.challenger``) on the same training rows,
    #: compared with the champion in the model document; never promoted.
    scorecard_challenger: bool = False
    #: Also fit the traditional WoE scorecard (``training.challenger``) on the same training rows,
    #: compared with the champion in the model document; never promoted.
    scorecard_challenger: bool = False

    @property
    def lgbm_params(self) -> dict[str, Any]:
        return {**BASE_LGBM_PARAMS, **self.lgbm_overrides}

    def lgbm_params_for(self, rows: int) -> dict[str, Any]:
        """:attr:`lgbm_params` for a training set of ``rows`` labelled rows: on a small book (a few
        hundred loans) the leaves and their minimum size shrink so the trees can split at all
        (300 rows per leaf learned nothing from 600 rows: AUC exactly 0.5). From 15,000 rows on
        the settings are the base ones."""
        params = self.lgbm_params
        params["min_child_samples"] = min(params["min_child_samples"], max(10, rows // 50))
        params["num_leaves"] = min(params["num_leaves"], max(4, rows // 100))
        return params

    def quality_gate(self, metrics: Mapping[str, float]) -> PromotionDecision:
        """Whether a candidate may become champion at all, whatever the current champion: its AUC
        must beat a constant score (0.5) by more than its confidence interval, and must not fall
        clearly below the logistic baseline (by more than the interval's half-width)."""
        auc, low, high = (metrics.get(k, float("nan")) for k in ("test_auc", "test_auc_ci_low",
                                                                   "test_auc_ci_high"))  # fmt: skip
        baseline = metrics.get("baseline_test_auc", float("nan"))
        interval = f"AUC {auc:.3f} (95% CI {low:.3f}-{high:.3f})"
        if not low > 0.5:
            return PromotionDecision(
                False, f"quality gate: {interval} does not beat a constant score (0.5)"
            )
        if auc < baseline - (high - low) / 2:
            return PromotionDecision(
                False,
                f"quality gate: {interval} falls clearly below the logistic baseline "
                f"({baseline:.3f})",
            )
        return PromotionDecision(True, f"quality gate passed: {interval}")

    def monotone_constraints(self, features: list[str]) -> list[int]:
        """One constraint per feature, in ``features`` order (0 where no pattern matches).

        The first matching pattern wins, so list specific patterns before general ones.
        """
        return [
            next((sign for pattern, sign in self.monotone.items() if fnmatch(f, pattern)), 0)
            for f in features
        ]

    def decide_promotion(self, candidate: float, champion: float | None) -> PromotionDecision:
        """Apply the promotion rule: beat the champion's metric by more than ``min_improvement``."""
        metric = f"test {self.promotion_metric}"
        if champion is None:
            return PromotionDecision(True, f"no champion yet; {metric} {candidate:.4f}")
        if candidate != candidate:  # NaN never wins
            return PromotionDecision(False, f"candidate {metric} is undefined")
        delta = candidate - champion if self.higher_is_better else champion - candidate
        beats = delta > self.min_improvement
        verdict = "beats" if beats else "does not beat"
        return PromotionDecision(
            beats,
            f"candidate {metric} {candidate:.4f} {verdict} champion {champion:.4f} "
            f"(improvement {delta:+.4f}, required > {self.min_improvement:.4f})",
        )
