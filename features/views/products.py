"""Product features: what the customer holds, for how long, recent openings/closings, maturities.

Every account opened before a snapshot is range-joined to it. An account is *held* at snapshot ``s``
when ``open_date < s`` and it was not closed before ``s``. Maturities in the next 30/90 days are
contractual dates known at ``s`` (not future information): they flag money about to fall idle.
"""

from __future__ import annotations

from crmscore.contract import CREDIT_KINDS, MATURING_KINDS, BankContract
from features.spec import Feature, FeatureGroup
from features.staging import sql_list

_DAYS_PER_MONTH = 30.4375


def _sql(contract: BankContract) -> str:
    maturing_products = sql_list(contract.products_of(MATURING_KINDS))
    credit_products = sql_list(contract.products_of(CREDIT_KINDS))

    def maturing(days: int) -> str:
        """A held term deposit or wealth product whose maturity falls in the next ``days`` days."""
        return (
            f"held AND product IN {maturing_products} AND maturity_date >= snapshot "
            f"AND maturity_date < snapshot + INTERVAL {days} DAY"
        )

    holdings = ",\n        ".join(
        f"count(*) FILTER (WHERE held AND product = '{p}') > 0 AS holds_{p}, "
        f"(any_value(snapshot)::DATE - min(open_date) FILTER (WHERE held AND product = '{p}'))"
        f" / {_DAYS_PER_MONTH} AS tenure_{p}"
        for p in contract.product_names
    )
    maturities = ",\n        ".join(
        f"count(*) FILTER (WHERE {maturing(d)}) AS maturing_{d}d, "
        f"coalesce(sum(limit_amount) FILTER (WHERE {maturing(d)}), 0) AS maturing_amount_{d}d"
        for d in (30, 90)
    )
    holds = ", ".join(
        f"coalesce(holds_{p}, false)::INT AS prod_holds_{p}" for p in contract.product_names
    )
    tenures = ", ".join(f"tenure_{p} AS prod_tenure_{p}_months" for p in contract.product_names)
    return f"""
WITH account_at AS (
    SELECT
        a.customer_id,
        m.month,
        m.snapshot,
        a.product,
        a.open_date,
        a.close_date,
        a.maturity_date,
        a.limit_amount,
        a.close_date IS NULL OR a.close_date >= m.snapshot AS held
    FROM accounts a
    JOIN months m ON a.open_date < m.snapshot
),
holdings AS (
    SELECT
        customer_id,
        month,
        count(*) FILTER (WHERE held) AS n_accounts,
        count(DISTINCT product) FILTER (WHERE held) AS n_products,
        {holdings},
        (any_value(snapshot)::DATE - min(open_date)) / {_DAYS_PER_MONTH} AS first_account_months,
        count(*) FILTER (WHERE open_date >= snapshot - INTERVAL 3 MONTH) AS opened_3m,
        count(*) FILTER (WHERE open_date >= snapshot - INTERVAL 12 MONTH) AS opened_12m,
        count(*) FILTER (
            WHERE close_date < snapshot AND close_date >= snapshot - INTERVAL 3 MONTH
        ) AS closed_3m,
        count(*) FILTER (
            WHERE close_date < snapshot AND close_date >= snapshot - INTERVAL 12 MONTH
        ) AS closed_12m,
        count(*) FILTER (
            WHERE product IN {credit_products} AND open_date >= snapshot - INTERVAL 6 MONTH
        ) AS credit_opened_6m,
        {maturities}
    FROM account_at
    GROUP BY customer_id, month
),
grid AS (
    SELECT
        s.customer_id, s.month, s.event_timestamp, s.known,
        coalesce(h.n_accounts, 0) AS n_accounts,
        coalesce(h.n_products, 0) AS n_products,
        h.* EXCLUDE (customer_id, month, n_accounts, n_products)
    FROM spine s
    LEFT JOIN holdings h USING (customer_id, month)
)
SELECT
    customer_id,
    event_timestamp,
    n_products AS prod_n_products,
    n_accounts AS prod_n_accounts,
    n_products - lag(n_products, 6) OVER w AS prod_n_products_change_6m,
    {holds},
    {tenures},
    first_account_months AS prod_first_account_months,
    coalesce(opened_3m, 0) AS prod_opened_3m,
    coalesce(opened_12m, 0) AS prod_opened_12m,
    coalesce(closed_3m, 0) AS prod_closed_3m,
    coalesce(closed_12m, 0) AS prod_closed_12m,
    coalesce(credit_opened_6m, 0) AS prod_credit_opened_6m,
    coalesce(maturing_30d, 0) AS prod_maturing_30d,
    coalesce(maturing_90d, 0) AS prod_maturing_90d,
    coalesce(maturing_amount_90d, 0) AS prod_maturing_amount_90d,
    known
FROM grid
WINDOW w AS (PARTITION BY customer_id ORDER BY month)
"""


def group(contract: BankContract) -> FeatureGroup:
    """The products view for ``contract``'s products."""
    products = contract.product_names
    maturing = bool(contract.products_of(MATURING_KINDS))
    return FeatureGroup(
        name="products",
        description="Products and accounts held across the bank, their age and maturities.",
        tags={"source": "accounts", "grain": "customer x month-start snapshot"},
        sql=_sql(contract),
        features=(
            Feature("prod_n_products", "int", "Distinct products held at the snapshot."),
            Feature("prod_n_accounts", "int", "Open accounts at the snapshot, all products."),
            Feature(
                "prod_n_products_change_6m",
                "int",
                "Products held now minus 6 months earlier (negative = dropping products).",
            ),
            *(
                Feature(
                    f"prod_holds_{p}", "int", f"1 if the customer holds a {p.replace('_', ' ')}."
                )
                for p in products
            ),
            *(
                Feature(
                    f"prod_tenure_{p}_months",
                    "float",
                    f"Months since the oldest {p.replace('_', ' ')} still held was opened; "
                    "empty if not held.",
                )
                for p in products
            ),
            Feature(
                "prod_first_account_months",
                "float",
                "Months since the customer's first account was opened (open or closed since).",
            ),
            Feature("prod_opened_3m", "int", "Accounts opened in the last 3 months."),
            Feature("prod_opened_12m", "int", "Accounts opened in the last 12 months."),
            Feature("prod_closed_3m", "int", "Accounts closed in the last 3 months."),
            Feature("prod_closed_12m", "int", "Accounts closed in the last 12 months."),
            Feature(
                "prod_credit_opened_6m",
                "int",
                "Credit accounts (cards, loans, mortgages) opened in the last 6 months (recent "
                "applications).",
            ),
            *(_MATURITY_FEATURES if maturing else ()),
        ),
    )


_MATURITY_FEATURES = (
    Feature(
        "prod_maturing_30d",
        "int",
        "Term deposits and wealth products maturing in the next 30 days (contractual).",
    ),
    Feature(
        "prod_maturing_90d",
        "int",
        "Term deposits and wealth products maturing in the next 90 days (contractual).",
    ),
    Feature(
        "prod_maturing_amount_90d",
        "float",
        "Principal of term deposits and wealth products maturing in the next 90 days.",
    ),
)
