"""Cross-sell: the customer opens product ``p`` within 3 months, among those who do not hold it.

One pooled model scores every (customer, product) pair, with the product as a categorical input:
the customer-level signals (idle funds, income, app browsing, life stage) are shared across the six
products, rare products borrow strength from common ones, and one registered model serves every
offer. Trees split on ``product`` wherever a signal means something different per product, and
per-product columns are also *aligned* to the row's product (``int_page_views_offered_3m`` = page
views of the product on offer), so the strongest trigger means the same for every product.
"""

from models.definition import ModelDefinition

CROSS_SELL = ModelDefinition(
    name="cross_sell",
    description="Probability that the customer opens a product they do not hold within 3 months.",
    horizon_months=3,
    population="offers",
    outcome="take_up",
    feature_service="cross_sell",
    oracle_outcome="cross_sell",
    key_features=("product",),
    align_by_key=True,
    # Column sampling would drop `product` from many trees; a pooled model needs it in each.
    lgbm_overrides={"num_leaves": 31, "colsample_bytree": 1.0},
    intended_use=(
        "Ranks (customer, product) offers by the probability of take-up for marketing target "
        "lists and the next best product. Not a credit decision: credit products are also "
        "screened by the probability of default."
    ),
    label_definition=(
        "1 when an account of the offered product opens within 3 months of the snapshot, else 0; "
        "one row per customer and product."
    ),
    population_text=(
        "Customers with an open account at the snapshot, for each product they do not hold."
    ),
    limitations=(
        "Take-up is observed with and without campaigns alike: the score is a propensity, not "
        "the uplift a contact would cause.",
        "Rare products (mortgage, insurance) have few events per snapshot; their per-product "
        "AUCs carry wide sampling error.",
    ),
)
