"""Marketing target lists: who to offer a product to, ranked by propensity, with the rules applied.

A :class:`TargetQuery` says which product, how many customers, and which exclusions apply:
customers who already hold the product, whose probability of default is above a threshold
(suitability, for every product by default, not only credit), who have no open account left
(churned), who gave no marketing consent, who were contacted by a campaign in the last K days, and
optional segment / region filters. :func:`select_targets` applies them to scored customers and
ranks what remains by propensity; each row carries the expected value (propensity x the product's
yearly margin, x (1 - PD) for credit products) and, via :func:`with_reasons`, the top reasons.

"Contacted in the last K days" is measured at the feature snapshot (the online store's date).

Products, segments and regions are the bank's own (its contract, ``bank.yaml``). A rule whose data
the bank does not have cannot be applied silently: a list that requires marketing consent from a
dataset without a consent column is refused unless the caller explicitly assumes consent
(``assume_consent``, and takes responsibility for it), and so are the contact-recency and segment
filters without the interaction log or the segment column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crmscore.settings import ServingSettings
from serving.catalogue import (
    credit_products,
    cross_sell_products,
    holding_feature,
    margin,
    regions,
    segments,
)
from serving.errors import InvalidRequest
from serving.scoring import Scores, is_active

if TYPE_CHECKING:
    from features.online import FeatureRows
    from training.compiled_model import CompiledModel


@dataclass(frozen=True)
class TargetQuery:
    """One campaign's list request. ``max_pd=None`` keeps customers of any credit risk."""

    product: str
    top: int
    max_pd: float | None = None
    exclude_holders: bool = True
    exclude_churned: bool = True
    require_consent: bool = True
    contacted_within_days: int | None = None
    segments: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    min_propensity: float = 0.0
    reasons: int = 3
    #: Target customers although the data holds no consent column: the caller vouches for it.
    assume_consent: bool = False

    def validate(self) -> TargetQuery:
        """Raise :class:`InvalidRequest` naming the field when the query cannot be answered."""
        if self.product not in cross_sell_products():
            raise InvalidRequest(
                f"unknown product {self.product!r}; expected one of {list(cross_sell_products())}",
                field="product",
            )
        if self.top < 1:
            raise InvalidRequest(f"top must be at least 1, got {self.top}", field="top")
        if self.max_pd is not None and not 0 < self.max_pd <= 1:
            raise InvalidRequest(f"max_pd must lie in (0, 1], got {self.max_pd}", field="max_pd")
        if self.contacted_within_days is not None and self.contacted_within_days < 0:
            raise InvalidRequest(
                f"contacted_within_days must be >= 0, got {self.contacted_within_days}",
                field="contacted_within_days",
            )
        for name, given, allowed in (
            ("segments", self.segments, segments()),
            ("regions", self.regions, regions()),
        ):
            unknown = sorted(set(given) - set(allowed))
            if unknown:
                raise InvalidRequest(
                    f"unknown {name} {unknown}; expected any of {list(allowed)}", field=name
                )
        return self

    def check_data(self, features: FeatureRows) -> None:
        """Raise :class:`InvalidRequest` when a rule the query asks for needs data the bank's
        dataset does not have (``features``: the book's feature rows)."""
        needed = [
            (self.require_consent and not self.assume_consent, "marketing_consent",
             "require_consent", "the data has no marketing consent column, so consent cannot be "
             "checked; set assume_consent to target these customers on your responsibility, or "
             "provide the consent column"),
            (self.contacted_within_days is not None, "int_days_since_campaign_contact",
             "contacted_within_days", "the data has no interaction log, so recent campaign "
             "contacts are unknown"),
            (bool(self.segments), "segment", "segments", "the data has no segment column"),
        ]  # fmt: skip
        for asked, column, field, reason in needed:
            if asked and column not in features:
                raise InvalidRequest(f"{field}: {reason}", field=field)


def exclusion_masks(
    query: TargetQuery, features: FeatureRows, scores: Scores
) -> dict[str, np.ndarray]:
    """One boolean mask per rule that applies: True = excluded for that reason. Missing values
    never exclude, except consent: no recorded consent is no consent."""
    masks: dict[str, np.ndarray] = {}
    if query.exclude_holders:
        masks["already holds it"] = features[holding_feature(query.product)] > 0
    if query.exclude_churned:
        masks["churned (no open account)"] = ~is_active(features)
    if query.require_consent and "marketing_consent" in features:
        masks["no marketing consent"] = ~(features["marketing_consent"] > 0)
    if query.max_pd is not None:
        masks[f"probability of default above {query.max_pd}"] = (
            scores.probability_of_default > query.max_pd
        )
    if query.contacted_within_days is not None:
        days = features["int_days_since_campaign_contact"]
        masks[f"contacted in the last {query.contacted_within_days} days"] = (
            days <= query.contacted_within_days
        )
    if query.segments:
        masks["outside the segments asked for"] = ~np.isin(features["segment"], query.segments)
    if query.regions:
        masks["outside the regions asked for"] = ~np.isin(features["region"], query.regions)
    if query.min_propensity > 0:
        masks[f"propensity below {query.min_propensity}"] = ~(
            scores.propensity_of(query.product) >= query.min_propensity
        )
    return masks


def select_targets(
    query: TargetQuery, features: FeatureRows, scores: Scores, settings: ServingSettings
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``(ranked list, excluded counts)``. ``features`` and ``scores`` are row-aligned (from
    :func:`serving.scoring.score_rows`). Counts are per rule, first rule that hits wins."""
    query.validate()
    query.check_data(features)
    excluded_any = np.zeros(len(scores), dtype=bool)
    counts: dict[str, int] = {}
    for reason, mask in exclusion_masks(query, features, scores).items():
        counts[reason] = int((mask & ~excluded_any).sum())
        excluded_any |= mask
    propensity = scores.propensity_of(query.product)
    keep = np.flatnonzero(~excluded_any & ~np.isnan(propensity))
    ids = np.asarray([scores.customer_ids[i] for i in keep], dtype=np.int64)
    # Highest propensity first; equal propensities by customer id.
    chosen = keep[np.lexsort((ids, -propensity[keep]))[: query.top]]
    pd_default = scores.probability_of_default[chosen]
    expected = propensity[chosen] * margin(query.product)
    if query.product in credit_products():
        expected = expected * (1 - pd_default)
    ranked = pd.DataFrame(
        {
            "rank": np.arange(1, len(chosen) + 1),
            "customer_id": [scores.customer_ids[i] for i in chosen],
            "product": query.product,
            "propensity": propensity[chosen],
            "expected_value": np.round(expected, 2),
            "probability_of_default": pd_default,
            "churn_probability": scores.churn[chosen],
            "tier": scores.tiers.tier[chosen],
            "segment": _text(features, "segment")[chosen],
            "region": _text(features, "region")[chosen],
        }
    )
    return ranked, counts


def _text(features: FeatureRows, name: str) -> np.ndarray:
    """A text feature's column, or all missing (None) when the bank's data has no such feature."""
    return features[name] if name in features else np.full(len(features), None, dtype=object)


def with_reasons(
    ranked: pd.DataFrame, features: FeatureRows, model: CompiledModel, top_k: int
) -> pd.DataFrame:
    """Add ``reasons`` (the top-k cross-sell reason sentences) to each row of a ranked list."""
    from serving.explain import ReasonPolicy, explain_rows

    if ranked.empty or top_k <= 0:
        return ranked.assign(reasons=[[] for _ in range(len(ranked))])
    position = {customer: i for i, customer in enumerate(features.customer_ids)}
    rows = features.take([position[c] for c in ranked["customer_id"]])
    product = str(ranked["product"].iloc[0])
    policy = ReasonPolicy.of(model.name, top_k)
    explanations = explain_rows(model, rows, policy, product=product)
    return ranked.assign(reasons=[[r.sentence for r in e.reasons] for e in explanations])
