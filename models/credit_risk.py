"""Credit risk: any credit account reaches 90+ days past due within 12 months.

Monotone where the direction is settled credit practice: more delinquency or utilisation never
lowers the risk; a more regular salary never raises it. The probability of default is calibrated
(Platt) on the validation snapshots and scaled to scorecard points; a WoE scorecard on the same
training rows is its challenger.
"""

from models.definition import ModelDefinition

CREDIT_RISK = ModelDefinition(
    name="credit_risk",
    description="Probability of default (90+ days past due) within 12 months.",
    horizon_months=12,
    population="credit",
    outcome="default",
    feature_service="credit_risk",
    oracle_outcome="default",
    monotone={
        # First match wins: "months since delinquency" must not fall under "*delinq*".
        "*months_since_delinquency*": -1,
        "*dpd*": 1,
        "*days_past_due*": 1,
        "*delinq*": 1,
        "*utili*ation": 1,
        "*overdraft*": 1,
        "*debt_service_ratio*": 1,
        "*salary_months*": -1,
        "*salary_regularity*": -1,
    },
    calibrate=True,
    scorecard=True,
    scorecard_challenger=True,
)
