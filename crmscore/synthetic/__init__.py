"""A synthetic retail bank with known truth: the embedded default data of crmscore.

Customers with latent traits (engagement, financial health, product affinity) behave month by month;
churn, product take-up and default are drawn from hazards of that behaviour; the true probabilities
(the oracle) are written beside the raw tables so every stage can report its gap to the best
possible model.
"""

from crmscore.synthetic.bank import BankSummary, generate_bank
from crmscore.synthetic.config import BankConfig, EconomicShock

__all__ = ["BankConfig", "BankSummary", "EconomicShock", "generate_bank"]
