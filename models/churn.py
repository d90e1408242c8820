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
    intended_use=(
        "Ranks active customers by their risk of leaving so that relationship managers and "
        "retention campaigns contact the most at-risk first (target lists, customer tiers). "
        "Not for decisions on credit, pricing or eligibility."
    ),
    label_definition=(
        "1 when the customer's last open account closes (dated by the latest close date) "
        "within 3 months of the snapshot, else 0."
    ),
    population_text="Customers with at least one open account at the snapshot.",
    limitations=(
        "A customer who moves their salary and activity elsewhere but keeps an account open "
        "is not a churner by this label (silent attrition).",
        "Three-month horizon: the score says little about attrition a year ahead.",
    ),
)
