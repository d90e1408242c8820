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
        # Credit practice: going below zero or beyond the limit and paying penalty interest
        # never lower the risk; a higher lowest balance never raises it.
        "*overlimit*": 1,
        "*negative_postings*": 1,
        "*negative_days*": 1,
        "*penalty*": 1,
        "*min_balance*": -1,
        "*debt_service_ratio*": 1,
        "*salary_months*": -1,
        "*salary_regularity*": -1,
    },
    calibrate=True,
    scorecard=True,
    scorecard_challenger=True,
    intended_use=(
        "Probability of default of existing credit customers, shown as PD, scorecard points and "
        "a master-scale grade: screens credit offers (no credit product above the maximum PD), "
        "sets customer tiers, and supports risk officers' reviews with reason codes. Not "
        "approved for capital (IRB) or provisioning (IFRS 9) figures."
    ),
    label_definition=(
        "1 when any credit account (card, personal loan, mortgage) is 90+ days past due at a "
        "month end within 12 months of the snapshot, else 0."
    ),
    population_text=(
        "Customers with an open credit account at the snapshot and none 90+ days past due at "
        "the latest month end before it."
    ),
    limitations=(
        "Twelve-month horizon on a short history: the train/test gap may be shorter than the "
        "horizon, and the test snapshot then holds only the held-out customers.",
        "Calibrated (Platt) on recent validation snapshots: a change in the economy shifts the "
        "default rate before the model is refitted; monitor the per-grade back-test.",
        "Applicants without a credit account at the bank are outside the population: the PD "
        "shown for them is an extrapolation.",
    ),
)
