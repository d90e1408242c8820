"""crmscore: churn, cross-sell and credit-risk scores for a retail bank's customers."""

__version__ = "0.1.0"
