"""The HTTP payloads: pydantic models BentoML validates requests with and publishes in OpenAPI."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

#: Bounds of a customer id: the online store keys it as a signed 64-bit integer (and pandas'
#: ``Int64`` holds no more), so a larger id is a malformed request, not a store failure.
CUSTOMER_ID_MIN = 1
CUSTOMER_ID_MAX = 2**63 - 1
CustomerId = Annotated[int, Field(ge=CUSTOMER_ID_MIN, le=CUSTOMER_ID_MAX)]
#: A customer id as a request gives it: a JSON integer. Strict, because pydantic would otherwise
#: take ``true`` for customer 1 and ``" 3 "`` for customer 3, and score someone nobody asked for.
RequestedId = Annotated[int, Field(strict=True, ge=CUSTOMER_ID_MIN, le=CUSTOMER_ID_MAX)]

ModelName = Literal["churn", "cross_sell", "credit_risk"]
#: A cross-sell product of the bank's contract (``bank.yaml``); checked against it per request.
Product = Annotated[str, Field(min_length=1, max_length=64)]


class ModelRef(BaseModel):
    model: str = Field(description="Registered model name in MLflow.")
    version: str = Field(description="Registered version the champion alias pointed at.")


class ChurnScore(BaseModel):
    probability: float = Field(description="Probability of closing all accounts within 3 months.")
    model: str
    version: str


class CreditScore(BaseModel):
    probability_of_default: float = Field(description="Calibrated PD (90+ dpd within 12 months).")
    points: float | None = Field(description="Scorecard points (higher = safer).")
    rating_grade: str | None = Field(
        description="Master-scale rating grade of the PD (settings training.master_scale)."
    )
    has_credit: bool = Field(description="Holds a credit product (PD is extrapolated otherwise).")
    model: str
    version: str


class ProductPropensity(BaseModel):
    product: str
    propensity: float | None = Field(
        description="Probability of opening it within 3 months; "
        "null when the customer already holds it."
    )
    holds: bool


class CrossSellScore(BaseModel):
    products: list[ProductPropensity]
    model: str
    version: str


class NextBestProduct(BaseModel):
    product: str
    propensity: float
    expected_value: float = Field(description="Propensity x yearly margin (x (1-PD) for credit).")


class OwnScore(BaseModel):
    probability: float = Field(description="Probability of the bank's own outcome.")
    model: str
    version: str


class CustomerScore(BaseModel):
    customer_id: CustomerId | None
    churn: ChurnScore
    credit_risk: CreditScore
    cross_sell: CrossSellScore
    own: dict[str, OwnScore] = Field(
        default_factory=dict,
        description="Scores of the bank's own models (settings training.custom_models), by name.",
    )
    value: float = Field(description="Yearly profit contribution estimate of current holdings.")
    tier: Literal["A", "B", "C", "D"]
    tier_reason: str
    contact_every_days: int
    next_best_product: NextBestProduct | None


class CustomerError(BaseModel):
    customer_id: CustomerId
    error: str


class ScoreResponse(BaseModel):
    results: list[CustomerScore]
    errors: list[CustomerError] = Field(
        description="Ids that could not be scored (e.g. unknown to the feature store)."
    )
    models: dict[str, ModelRef]


class ReasonCode(BaseModel):
    code: str = Field(description="Stable reason code of the feature family, e.g. C01.")
    text: str = Field(description="The family's short text, as an adverse-action notice says it.")
    feature: str = Field(description="The family's feature that pushed hardest this way.")
    value: float | str | None = Field(description="That feature's value for the customer.")
    contribution: float = Field(
        description="Summed SHAP value of the family's features, log-odds; > 0 raises the score."
    )
    sentence: str = Field(description="The leading feature's value and effect, in words.")
    features: list[str] = Field(description="The family's features with a contribution.")


class ExplainResponse(BaseModel):
    customer_id: CustomerId
    model: str
    registered_model: str
    version: str
    product: str | None
    probability: float
    points: float | None = None
    raw_score: float = Field(description="Booster log-odds; = base_value + sum(contributions).")
    base_value: float
    reasons: list[ReasonCode]
    contributions: dict[str, float]
    withheld: float = Field(
        description="Summed contribution of the attributes never given as reasons "
        "(settings serving.never_reasons); included in contributions."
    )


class TargetRow(BaseModel):
    rank: int
    customer_id: CustomerId
    propensity: float
    expected_value: float
    probability_of_default: float
    churn_probability: float
    tier: str
    segment: str | None
    region: str | None
    reasons: list[str]


class TargetsResponse(BaseModel):
    product: str
    targets: list[TargetRow]
    eligible: int = Field(description="Customers left after the exclusions.")
    excluded: dict[str, int] = Field(description="Customers removed, per rule (first rule wins).")
    scored: int
    model: ModelRef


class ReloadResponse(BaseModel):
    reloaded: bool
    models: dict[str, ModelRef]
