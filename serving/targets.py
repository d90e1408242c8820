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

import pandas as pd

from crmscore.contract import current_contract
from crmscore.settings import ServingSettings
from serving.errors import InvalidRequest
from serving.scoring import holds, is_active, propensity_column


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
        contract = current_contract()
        offers = contract.cross_sell_products
        if self.product not in offers:
            raise InvalidRequest(
                f"unknown product {self.product!r}; expected one of {list(offers)}",
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
            ("segments", self.segments, contract.segments),
            ("regions", self.regions, contract.regions),
        ):
            unknown = sorted(set(given) - set(allowed))
            if unknown:
                raise InvalidRequest(
                    f"unknown {name} {unknown}; expected any of {list(allowed)}", field=name
                )
        return self

    def check_data(self, features: pd.DataFrame) -> None:
        """Raise :class:`InvalidRequest` when a rule the query asks for needs data the bank's
        dataset does not have (``features``: the book's feature columns)."""
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
    query: TargetQuery, features: pd.DataFrame, scored: pd.DataFrame
) -> dict[str, pd.Series]:
    """One boolean mask per rule that applies: True = excluded for that reason."""
    masks: dict[str, pd.Series] = {}
    if query.exclude_holders:
        masks["already holds it"] = holds(features, query.product)
    if query.exclude_churned:
        masks["churned (no open account)"] = ~is_active(features)
    if query.require_consent and "marketing_consent" in features:
        masks["no marketing consent"] = ~(features["marketing_consent"].fillna(0) > 0)
    if query.max_pd is not None:
        masks[f"probability of default above {query.max_pd}"] = (
            scored["probability_of_default"] > query.max_pd
        )
    if query.contacted_within_days is not None:
        days = features["int_days_since_campaign_contact"]
        masks[f"contacted in the last {query.contacted_within_days} days"] = (
            days <= query.contacted_within_days
        ).fillna(False)
    if query.segments:
        masks["outside the segments asked for"] = ~features["segment"].isin(query.segments)
    if query.regions:
        masks["outside the regions asked for"] = ~features["region"].isin(query.regions)
    if query.min_propensity > 0:
        masks[f"propensity below {query.min_propensity}"] = ~(
            scored[propensity_column(query.product)] >= query.min_propensity
        )
    return masks


def select_targets(
    query: TargetQuery, features: pd.DataFrame, scored: pd.DataFrame, settings: ServingSettings
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``(ranked list, excluded counts)``. ``features`` and ``scored`` are row-aligned (same order,
    from :func:`serving.scoring.score_frame`). Counts are per rule, first rule that hits wins."""
    query.validate()
    query.check_data(features)
    features = features.reset_index(drop=True)
    scored = scored.reset_index(drop=True)
    excluded_any = pd.Series(False, index=scored.index)
    counts: dict[str, int] = {}
    for reason, mask in exclusion_masks(query, features, scored).items():
        mask = mask.fillna(False).astype(bool)
        counts[reason] = int((mask & ~excluded_any).sum())
        excluded_any |= mask
    propensity = scored[propensity_column(query.product)]
    keep = ~excluded_any & propensity.notna()
    contract = current_contract()
    expected = propensity * contract.products[query.product].margin
    if query.product in contract.credit_products:
        expected = expected * (1 - scored["probability_of_default"])
    ranked = pd.DataFrame(
        {
            "customer_id": scored["customer_id"],
            "product": query.product,
            "propensity": propensity,
            "expected_value": expected.round(2),
            "probability_of_default": scored["probability_of_default"],
            "churn_probability": scored["churn_probability"],
            "tier": scored["tier"],
            "segment": features.get("segment"),
            "region": features["region"],
        }
    )[keep]
    ranked = ranked.sort_values(
        ["propensity", "customer_id"], ascending=[False, True], kind="stable"
    ).head(query.top)
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked.reset_index(drop=True), counts


def with_reasons(ranked: pd.DataFrame, features: pd.DataFrame, model, top_k: int) -> pd.DataFrame:
    """Add ``reasons`` (the top-k cross-sell reason sentences) to each row of a ranked list."""
    from serving.explain import explain_rows

    if ranked.empty or top_k <= 0:
        return ranked.assign(reasons=[[] for _ in range(len(ranked))])
    rows = features.set_index("customer_id").loc[ranked["customer_id"]].reset_index()
    product = str(ranked["product"].iloc[0])
    explanations = explain_rows(model, rows, top_k, product=product)
    return ranked.assign(reasons=[[r.sentence for r in e.reasons] for e in explanations])
