"""Churn: the customer closes their last account within 3 months of the snapshot."""

from models.definition import ModelDefinition

CHURN = ModelDefinition(
    name="churn",
    description="Probability that the customer closes all accounts within 3 months.",
    horizon_months=3,
    population="active",
    outcome="churn",
    feature_service="churn",
    oracle_outcome="churn",
)
