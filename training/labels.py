"""Point-in-time labels, built from the raw tables with DuckDB.

A label answers "did the event happen in the ``horizon`` months after snapshot ``s``?" for every
customer who was *eligible* at ``s``. Eligibility uses only what was known before ``s``; the
outcome uses only ``[s, s + horizon)``. Snapshots whose window runs past the end of the data are
dropped: a customer who has not churned *yet* is not a non-churner.

The definitions (shared with the synthetic bank's oracle; see DEVELOPERS.md):

- **churn**: the customer's last open account closes (no other account open after that day); label
  1 if that day is in ``[s, s + 3 months)``. Population: at least one open account at ``s``.
- **cross_sell** (one row per product ``p``): an account of ``p`` opens in ``[s, s + 3 months)``.
  Population: an open account at ``s`` and no open account of ``p`` at ``s``.
- **credit_risk**: any credit account is 90+ days past due at a month end in ``[s, s + 12 months)``.
  Population: an open credit account at ``s`` and none at 90+ days in the month end before ``s``.

"Open at s" means ``open_date < s`` and not closed before ``s`` (``close_date`` empty or ``>= s``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from crmscore.contract import contract_of
from crmscore.dataset import parquet_glob
from crmscore.settings import get_settings

LABEL_TABLES = ("accounts", "transactions", "credit_status")
#: Label inputs a bank may not have (the derived default label needs credit_status).
OPTIONAL_LABEL_TABLES = frozenset({"credit_status"})
#: Days past due from which a credit account counts as defaulted.
DEFAULT_DPD = 90
#: Resolution of the customer sample behind ``max_rows`` (shares in steps of one in a million).
_SAMPLE_BUCKETS = 1_000_000

_OPEN_AT = "a.open_date < s.snapshot AND (a.close_date IS NULL OR a.close_date >= s.snapshot)"

#: model -> (CTEs ending with ``population``: who is eligible when, the outcome SELECT over it).
_LABEL_SQL: dict[str, tuple[str, str]] = {
    "churn": (
        f"""
        WITH population AS (
            SELECT DISTINCT s.snapshot, a.customer_id
            FROM snapshots s JOIN accounts a ON {_OPEN_AT}
        ),
        churn_days AS (  -- days on which a customer's last open account closed
            SELECT DISTINCT c.customer_id, c.close_date AS day
            FROM accounts c
            WHERE c.close_date IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM accounts o
                WHERE o.customer_id = c.customer_id AND o.open_date <= c.close_date
                  AND (o.close_date IS NULL OR o.close_date > c.close_date))
        )
    """,
        """
        SELECT p.customer_id, p.snapshot,
               COALESCE(bool_or(d.day IS NOT NULL), FALSE)::INT AS label
        FROM population p
        LEFT JOIN churn_days d ON d.customer_id = p.customer_id
             AND d.day >= p.snapshot AND d.day < p.snapshot + to_months($horizon)
        GROUP BY ALL
    """,
    ),
    "cross_sell": (
        f"""
        WITH customers_open AS (
            SELECT DISTINCT s.snapshot, a.customer_id
            FROM snapshots s JOIN accounts a ON {_OPEN_AT}
        ),
        held AS (
            SELECT DISTINCT s.snapshot, a.customer_id, a.product
            FROM snapshots s JOIN accounts a ON {_OPEN_AT}
        ),
        population AS (
            SELECT c.snapshot, c.customer_id, p.product
            FROM customers_open c CROSS JOIN products p
            ANTI JOIN held h ON h.snapshot = c.snapshot AND h.customer_id = c.customer_id
                             AND h.product = p.product
        )
    """,
        """
        SELECT p.customer_id, p.snapshot, p.product,
               COALESCE(bool_or(a.account_id IS NOT NULL), FALSE)::INT AS label
        FROM population p
        LEFT JOIN accounts a ON a.customer_id = p.customer_id AND a.product = p.product
             AND a.open_date >= p.snapshot AND a.open_date < p.snapshot + to_months($horizon)
        GROUP BY ALL
    """,
    ),
    "credit_risk": (
        f"""
        WITH credit AS (
            SELECT * FROM accounts WHERE product IN (SELECT product FROM credit_products)
        ),
        status AS (
            SELECT c.customer_id, cs.month, cs.days_past_due
            FROM credit_status cs JOIN credit c USING (account_id)
        ),
        population AS (
            SELECT DISTINCT s.snapshot, a.customer_id
            FROM snapshots s JOIN credit a ON {_OPEN_AT}
            ANTI JOIN status b ON b.customer_id = a.customer_id
                 AND b.month = s.snapshot - INTERVAL 1 DAY AND b.days_past_due >= $dpd
        )
    """,
        """
        SELECT p.customer_id, p.snapshot,
               COALESCE(bool_or(st.month IS NOT NULL), FALSE)::INT AS label
        FROM population p
        LEFT JOIN status st ON st.customer_id = p.customer_id AND st.days_past_due >= $dpd
             AND st.month >= p.snapshot AND st.month < p.snapshot + to_months($horizon)
        GROUP BY ALL
    """,
    ),
}


def _connect(raw_dir: Path, share: float = 1.0) -> duckdb.DuckDBPyConnection:
    """Views over the raw tables the labels read (those present); with ``share`` < 1 the accounts
    (and through them every label input) of a fixed hash sample of customers only."""
    con = duckdb.connect()
    # The cross-sell population of a large bank is tens of millions of rows: spill, don't OOM.
    con.execute(f"SET memory_limit = '{get_settings().features.duckdb_memory()}'")
    con.execute("SET preserve_insertion_order = false")  # ORDER BY sorts the result anyway
    for table in LABEL_TABLES:
        source = parquet_glob(raw_dir, table)
        if source is None:
            if table in OPTIONAL_LABEL_TABLES:
                continue
            raise FileNotFoundError(
                f"raw table '{table}' not found: expected Parquet files in {raw_dir / table}/ "
                "(generate a bank with `crmscore generate` or point CRMSCORE_DATA_DIR at your data)"
            )
        sample = ""
        if table == "accounts" and share < 1.0:
            sample = (
                f" WHERE hash(customer_id) % {_SAMPLE_BUCKETS} < {round(share * _SAMPLE_BUCKETS)}"
            )
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{source}'){sample}")
    return con


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}


def _query(
    raw_dir: Path, sql: str, snapshots: list[date], params: dict, share: float = 1.0
) -> duckdb.DuckDBPyConnection:
    con = _connect(raw_dir, share)
    if "credit_status" in sql and "credit_status" not in _tables(con):
        raise ValueError(
            f"{raw_dir} has no credit_status table (monthly days past due), so defaults cannot be "
            "derived from it: give the bank's own outcomes instead (an outcomes table)"
        )
    contract = contract_of(raw_dir)
    con.register("snapshots", pd.DataFrame({"snapshot": pd.to_datetime(snapshots).date}))
    con.register("products", pd.DataFrame({"product": list(contract.cross_sell_products)}))
    con.register("credit_products", pd.DataFrame({"product": list(contract.credit_products)}))
    return con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})


def _month_start(day: date) -> bool:
    return day.day == 1


def observation_end(raw_dir: Path | None = None) -> date:
    """First month start after the data: outcome windows must end on or before it."""
    raw_dir = Path(raw_dir or get_settings().raw_dir)
    con = _connect(raw_dir)
    latest = [
        "(SELECT max(ts)::DATE FROM transactions)",
        "(SELECT max(greatest(open_date, coalesce(close_date, open_date))) FROM accounts)",
    ]
    if "credit_status" in _tables(con):
        latest.append("(SELECT max(month) FROM credit_status)")
    last = con.execute(f"SELECT greatest({', '.join(latest)})").fetchone()[0]
    if last is None:
        raise ValueError(f"raw tables in {raw_dir} are empty")
    return (pd.Timestamp(last).to_period("M") + 1).to_timestamp().date()


def observation_start(raw_dir: Path | None = None) -> date:
    """The first month start of the data (the earliest transaction's month)."""
    raw_dir = Path(raw_dir or get_settings().raw_dir)
    first = _connect(raw_dir).execute("SELECT min(ts)::DATE FROM transactions").fetchone()[0]
    return pd.Timestamp(first).to_period("M").to_timestamp().date()


def fully_labelled(snapshots: list[date], horizon_months: int, end: date) -> list[date]:
    """The snapshots whose whole outcome window ``[s, s + horizon)`` ends by ``end``."""
    window = pd.DateOffset(months=horizon_months)
    return [s for s in snapshots if pd.Timestamp(s) + window <= pd.Timestamp(end)]


def build_labels(
    model: str,
    snapshots: list[date],
    raw_dir: Path | None = None,
    horizon_months: int | None = None,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Labels for ``model`` ("churn", "cross_sell", "credit_risk") at each fully labelled snapshot.

    Returns one row per eligible customer and snapshot (and product, for cross_sell) with columns
    ``customer_id`` (int64), ``event_timestamp`` (the snapshot as a timestamp), [``product``] and
    ``label`` (0/1), sorted. Snapshots must be month starts; those whose outcome window is not
    inside the data are left out.

    With ``max_rows``, a bank with more labelled rows keeps a sample of its *customers* (every row
    of a kept customer, so per-customer splits still work), chosen by a fixed hash of
    ``customer_id`` independent of the split's holdout hash. The share kept is in
    ``frame.attrs["customer_share"]`` (1.0 when nothing was dropped).
    """
    if model not in _LABEL_SQL:
        raise ValueError(f"unknown model '{model}': expected one of {sorted(_LABEL_SQL)}")
    bad = [s for s in snapshots if not _month_start(s)]
    if bad:
        raise ValueError(f"snapshots must be month starts (YYYY-MM-01), got {bad[:3]}")
    raw_dir = Path(raw_dir or get_settings().raw_dir)
    if horizon_months is None:
        from models import get_definition  # the horizon is part of the model's definition

        horizon_months = get_definition(model).horizon_months
    horizon = horizon_months
    keep = fully_labelled(sorted(set(snapshots)), horizon, observation_end(raw_dir))
    columns = ["customer_id", "event_timestamp"] + (["product"] if model == "cross_sell" else [])
    if not keep:
        return pd.DataFrame({c: [] for c in [*columns, "label"]}).astype(
            {"customer_id": "int64", "event_timestamp": "datetime64[ns]", "label": "int64"}
        )
    population, outcome = _LABEL_SQL[model]
    params = {"horizon": horizon, "dpd": DEFAULT_DPD}
    share = 1.0
    if max_rows is not None:  # count who is eligible (cheap), then label a share of customers
        (rows,) = _query(
            raw_dir, f"{population} SELECT count(*) FROM population", keep, params
        ).fetchone()
        share = min(1.0, max_rows / max(rows, 1))
    frame = _query(
        raw_dir, f"SELECT * FROM ({population} {outcome}) ORDER BY ALL", keep, params, share
    ).df()
    frame = frame.rename(columns={"snapshot": "event_timestamp"})
    frame["customer_id"] = frame["customer_id"].astype("int64")
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"]).astype("datetime64[ns]")
    frame["label"] = frame["label"].astype("int64")
    order = [*columns, "label"]
    frame = frame[order]  # already sorted by ORDER BY ALL (the keys are unique per row)
    frame.attrs["customer_share"] = share
    return frame
