"""Cross-sell: the customer opens product ``p`` within 3 months, among those who do not hold it.

One pooled model scores every (customer, product) pair, with the product as a categorical input:
the customer-level signals (idle funds, income, app browsing, life stage) are shared across the six
products, rare products borrow strength from common ones, and one registered model serves every
offer. Trees split on ``product`` wherever a signal means something different per product.
"""

from models.definition import ModelDefinition

CROSS_SELL = ModelDefinition(
    name="cross_sell",
    description="Probability that the customer opens a product they do not hold within 3 months.",
    horizon_months=3,
    feature_service="cross_sell",
    oracle_outcome="cross_sell",
    key_features=("product",),
    lgbm_overrides={"num_leaves": 31},
)
