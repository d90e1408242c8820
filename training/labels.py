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

import functools
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from crmscore.contract import contract_of
from crmscore.dataset import data_fingerprint, duckdb_select, parquet_glob, table_columns
from crmscore.schema import TABLES
from crmscore.settings import get_settings

LABEL_TABLES = ("accounts", "transactions", "credit_status", "outcomes")
#: Label inputs a bank may not have (the derived default label needs credit_status).
OPTIONAL_LABEL_TABLES = frozenset({"credit_status", "outcomes"})
#: Days past due from which a credit account counts as defaulted.
DEFAULT_DPD = 90
#: Resolution of the customer sample behind ``max_rows`` (shares in steps of one in a million).
_SAMPLE_BUCKETS = 1_000_000

_OPEN_AT = "a.open_date < s.snapshot AND (a.close_date IS NULL OR a.close_date >= s.snapshot)"

#: Who is eligible at snapshot ``s``: CTEs ending with ``population`` (snapshot, customer_id[,
#: product]). ``credit`` leaves out customers already in default (``in_default``, defined by the
#: label's source: 90+ days past due at the last month end, or a default event in the horizon).
POPULATIONS: dict[str, str] = {
    "active": f"""
        population AS (
            SELECT DISTINCT s.snapshot, a.customer_id
            FROM snapshots s JOIN accounts a ON {_OPEN_AT}
        )""",
    "offers": f"""
        customers_open AS (
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
        )""",
    "credit": f"""
        credit AS (
            SELECT * FROM accounts WHERE product IN (SELECT product FROM credit_products)
        ),
        population AS (
            SELECT DISTINCT s.snapshot, a.customer_id
            FROM snapshots s JOIN credit a ON {_OPEN_AT}
            ANTI JOIN in_default d ON d.customer_id = a.customer_id AND d.snapshot = s.snapshot
        )""",
}

#: ``in_default`` for the derived default label: 90+ days past due at the month end before s.
_STATUS_DEFAULTS = """
        status AS (
            SELECT a.customer_id, cs.month, cs.days_past_due
            FROM credit_status cs JOIN accounts a USING (account_id)
            WHERE a.product IN (SELECT product FROM credit_products)
        ),
        in_default AS (
            SELECT s.snapshot, b.customer_id FROM snapshots s
            JOIN status b ON b.month = s.snapshot - INTERVAL 1 DAY AND b.days_past_due >= $dpd
        )"""
#: ``in_default`` for a default label from the bank's outcomes: an event in the horizon before s.
_EVENT_DEFAULTS = """
        in_default AS (
            SELECT s.snapshot, e.customer_id FROM snapshots s
            JOIN events e ON e.date < s.snapshot AND e.date >= s.snapshot - to_months($horizon)
        )"""

#: The derived labels (from accounts and credit_status), per model: extra CTEs and the SELECT.
_DERIVED: dict[str, tuple[str, str]] = {
    "churn": (
        """
        churn_days AS (  -- days on which a customer's last open account closed
            SELECT DISTINCT c.customer_id, c.close_date AS day
            FROM accounts c
            WHERE c.close_date IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM accounts o
                WHERE o.customer_id = c.customer_id AND o.open_date <= c.close_date
                  AND (o.close_date IS NULL OR o.close_date > c.close_date))
        )""",
        """
        SELECT p.customer_id, p.snapshot,
               COALESCE(bool_or(d.day IS NOT NULL), FALSE)::INT AS label
        FROM population p
        LEFT JOIN churn_days d ON d.customer_id = p.customer_id
             AND d.day >= p.snapshot AND d.day < p.snapshot + to_months($horizon)
        GROUP BY ALL""",
    ),
    "cross_sell": (
        "",
        """
        SELECT p.customer_id, p.snapshot, p.product,
               COALESCE(bool_or(a.account_id IS NOT NULL), FALSE)::INT AS label
        FROM population p
        LEFT JOIN accounts a ON a.customer_id = p.customer_id AND a.product = p.product
             AND a.open_date >= p.snapshot AND a.open_date < p.snapshot + to_months($horizon)
        GROUP BY ALL""",
    ),
    "credit_risk": (
        "",
        """
        SELECT p.customer_id, p.snapshot,
               COALESCE(bool_or(st.month IS NOT NULL), FALSE)::INT AS label
        FROM population p
        LEFT JOIN status st ON st.customer_id = p.customer_id AND st.days_past_due >= $dpd
             AND st.month >= p.snapshot AND st.month < p.snapshot + to_months($horizon)
        GROUP BY ALL""",
    ),
}

#: The bank's recorded events of the model's outcome (``$outcome``).
_EVENTS = """
        events AS (
            SELECT customer_id, product, date FROM outcomes
            WHERE outcome = $outcome AND happened IS NULL
        )"""


def _event_label(population: str) -> str:
    """The SELECT labelling ``population`` with the bank's events of the outcome."""
    keys = "p.customer_id, p.snapshot" + (", p.product" if population == "offers" else "")
    same_product = " AND e.product = p.product" if population == "offers" else ""
    return f"""
        SELECT {keys}, COALESCE(bool_or(e.date IS NOT NULL), FALSE)::INT AS label
        FROM population p
        LEFT JOIN events e ON e.customer_id = p.customer_id{same_product}
             AND e.date >= p.snapshot AND e.date < p.snapshot + to_months($horizon)
        GROUP BY ALL"""


@dataclass(frozen=True)
class LabelSource:
    """Where a model's labels come from: the derived rule, the bank's recorded ``events`` of its
    outcome at monthly snapshots, or its decided ``cases`` (one row per case at its date)."""

    kind: Literal["derived", "events", "cases"]
    outcome: str

    def describe(self) -> str:
        if self.kind == "derived":
            return "the derived rule (accounts, credit_status)"
        if self.kind == "events":
            return f"the bank's recorded {self.outcome!r} events (outcomes table)"
        return f"the bank's decided {self.outcome!r} cases, each at its own date (outcomes table)"


def label_source(definition, raw_dir: Path) -> LabelSource:
    """The label source of ``definition`` for the dataset in ``raw_dir``: by the setting
    ``training.label_source`` (``auto`` by default: the bank's outcomes when the outcomes table
    holds the definition's outcome, else the derived rule)."""
    choice = get_settings().training.label_source.get(definition.name, "auto")
    counts = _outcome_counts(raw_dir, definition.outcome)
    if choice == "derived" or (choice == "auto" and not sum(counts.values())):
        if definition.name not in _DERIVED:
            raise ValueError(
                f"model '{definition.name}' has no derived label: the outcomes table needs rows "
                f"of outcome {definition.outcome!r}"
            )
        return LabelSource("derived", definition.outcome)
    if not sum(counts.values()):
        raise ValueError(
            f"training.label_source says outcomes for '{definition.name}', but the outcomes "
            f"table of {raw_dir} holds no {definition.outcome!r} rows"
        )
    if counts["events"] and counts["cases"]:
        raise ValueError(
            f"outcome {definition.outcome!r} mixes events (happened empty: "
            f"{counts['events']} rows) and decided cases (happened true/false: "
            f"{counts['cases']} rows): give them different outcome names"
        )
    return LabelSource("events" if counts["events"] else "cases", definition.outcome)


def case_months(raw_dir: Path, outcome: str) -> list[date]:
    """The months (first days) holding decided cases of ``outcome``."""
    source = parquet_glob(raw_dir, "outcomes")
    if source is None:
        return []
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT DISTINCT date_trunc('month', date)::DATE FROM read_parquet('{source}') "
            "WHERE outcome = ? AND happened IS NOT NULL ORDER BY 1",
            [outcome],
        ).fetchall()
    return [row[0] for row in rows]


def _outcome_counts(raw_dir: Path, outcome: str) -> dict[str, int]:
    source = parquet_glob(raw_dir, "outcomes")
    if source is None:
        return {"events": 0, "cases": 0}
    with duckdb.connect() as con:
        columns = set(con.execute(f"SELECT * FROM read_parquet('{source}') LIMIT 0").df().columns)
        happened = "happened" if "happened" in columns else "NULL::BOOLEAN"
        events, cases = con.execute(
            f"SELECT count(*) FILTER (WHERE {happened} IS NULL), "
            f"count(*) FILTER (WHERE {happened} IS NOT NULL) "
            f"FROM read_parquet('{source}') WHERE outcome = ?",
            [outcome],
        ).fetchone()
    return {"events": int(events), "cases": int(cases)}


def _connect(raw_dir: Path, share: float = 1.0) -> duckdb.DuckDBPyConnection:
    """Views over the raw tables the labels read (those present, every contract column); with
    ``share`` < 1 the accounts and outcomes (and through them every label input) of a fixed hash
    sample of customers only."""
    con = duckdb.connect()
    # The cross-sell population of a large bank is tens of millions of rows: spill, don't OOM.
    con.execute(f"SET memory_limit = '{get_settings().features.duckdb_memory()}'")
    con.execute("SET preserve_insertion_order = false")  # ORDER BY sorts the result anyway
    present = table_columns(raw_dir)
    for table in LABEL_TABLES:
        if table not in present:
            if table in OPTIONAL_LABEL_TABLES:
                continue
            raise FileNotFoundError(
                f"raw table '{table}' not found: expected Parquet files in {raw_dir / table}/ "
                "(generate a bank with `crmscore generate` or point CRMSCORE_DATA_DIR at your data)"
            )
        sample = ""
        if table in ("accounts", "outcomes") and share < 1.0:
            sample = (
                f" WHERE hash(customer_id) % {_SAMPLE_BUCKETS} < {round(share * _SAMPLE_BUCKETS)}"
            )
        columns = duckdb_select(TABLES[table], present[table])
        source = parquet_glob(raw_dir, table)
        con.execute(
            f"CREATE VIEW {table} AS SELECT {columns} FROM read_parquet('{source}'){sample}"
        )
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
    _, last = _data_days(raw_dir, data_fingerprint(raw_dir))
    if last is None:
        raise ValueError(f"raw tables in {raw_dir} are empty")
    return (pd.Timestamp(last).to_period("M") + 1).to_timestamp().date()


def observation_start(raw_dir: Path | None = None) -> date:
    """The first month start of the data (the earliest transaction's month)."""
    raw_dir = Path(raw_dir or get_settings().raw_dir)
    first, _ = _data_days(raw_dir, data_fingerprint(raw_dir))
    return pd.Timestamp(first).to_period("M").to_timestamp().date()


@functools.lru_cache(maxsize=4)
def _data_days(raw_dir: Path, fingerprint: str) -> tuple[date | None, date | None]:
    """The earliest transaction's day and the latest day of any dated row, for the raw files
    whose :func:`~crmscore.dataset.data_fingerprint` is ``fingerprint``. Kept per fingerprint: a
    training run asks a dozen times, and each answer reads every transaction (2 s at 1M)."""
    con = _connect(raw_dir)
    latest = [
        "max(ts)::DATE",
        "(SELECT max(greatest(open_date, coalesce(close_date, open_date))) FROM accounts)",
    ]
    if "credit_status" in _tables(con):
        latest.append("(SELECT max(month) FROM credit_status)")
    return con.execute(
        f"SELECT min(ts)::DATE, greatest({', '.join(latest)}) FROM transactions"
    ).fetchone()


def fully_labelled(snapshots: list[date], horizon_months: int, end: date) -> list[date]:
    """The snapshots whose whole outcome window ``[s, s + horizon)`` ends by ``end``."""
    window = pd.DateOffset(months=horizon_months)
    return [s for s in snapshots if pd.Timestamp(s) + window <= pd.Timestamp(end)]


def _label_sql(definition, source: LabelSource) -> tuple[str, str]:
    """``(WITH ... population, labelling SELECT)`` for ``definition`` from ``source``; the SELECT
    gives customer_id, snapshot[, product], label. Counting ``population`` is cheap, so a large
    bank is sampled before it is labelled."""
    population = definition.population
    if source.kind == "cases":
        product = ", product" if population == "offers" else ""
        cases = f"""
        WITH population AS (
            SELECT customer_id, date AS snapshot{product}, happened::INT AS label
            FROM outcomes
            WHERE outcome = $outcome AND happened IS NOT NULL
              AND date_trunc('month', date)::DATE IN (SELECT snapshot FROM snapshots)
        )"""
        return cases, " SELECT * FROM population"
    ctes: list[str] = []
    if source.kind == "events":
        ctes.append(_EVENTS)
        select = _event_label(population)
    else:
        extra, select = _DERIVED[definition.name]
        ctes += [extra] if extra else []
    if population == "credit":
        ctes.append(_EVENT_DEFAULTS if source.kind == "events" else _STATUS_DEFAULTS)
    return "WITH " + ",".join([*ctes, POPULATIONS[population]]), select


def build_labels(
    model,
    snapshots: list[date],
    raw_dir: Path | None = None,
    max_rows: int | None = None,
    source: LabelSource | None = None,
) -> pd.DataFrame:
    """Labels for ``model`` (a :class:`~models.definition.ModelDefinition` or its name) at each
    fully labelled snapshot, from ``source`` (default: :func:`label_source`).

    Returns one row per eligible customer and snapshot (and product, for per-product models) with
    columns ``customer_id`` (int64), ``event_timestamp`` (the snapshot as a timestamp),
    [``product``] and ``label`` (0/1), sorted. Snapshots must be month starts; those whose outcome
    window is not inside the data are left out. Decided cases are one row each at their own date
    (``event_timestamp`` any day), for the case months in ``snapshots``.

    With ``max_rows``, a bank with more labelled rows keeps a sample of its *customers* (every row
    of a kept customer, so per-customer splits still work), chosen by a fixed hash of
    ``customer_id`` independent of the split's holdout hash. The share kept is in
    ``frame.attrs["customer_share"]`` (1.0 when nothing was dropped).
    """
    from models import get_definition

    definition = get_definition(model) if isinstance(model, str) else model
    bad = [s for s in snapshots if not _month_start(s)]
    if bad:
        raise ValueError(f"snapshots must be month starts (YYYY-MM-01), got {bad[:3]}")
    raw_dir = Path(raw_dir or get_settings().raw_dir)
    source = source or label_source(definition, raw_dir)
    horizon = definition.horizon_months
    keep = sorted(set(snapshots))
    if source.kind != "cases":
        keep = fully_labelled(keep, horizon, observation_end(raw_dir))
    columns = ["customer_id", "event_timestamp"]
    columns += ["product"] if definition.population == "offers" else []
    if not keep:
        return pd.DataFrame({c: [] for c in [*columns, "label"]}).astype(
            {"customer_id": "int64", "event_timestamp": "datetime64[ns]", "label": "int64"}
        )
    population, select = _label_sql(definition, source)
    params = {"horizon": horizon, "dpd": DEFAULT_DPD, "outcome": source.outcome}
    share = 1.0
    if max_rows is not None:  # count who is eligible (cheap), then label a share of customers
        count = f"{population} SELECT count(*) FROM population"
        (rows,) = _query(raw_dir, count, keep, params).fetchone()
        share = min(1.0, max_rows / max(rows, 1))
    labelled = f"SELECT * FROM ({population} {select}) ORDER BY ALL"
    frame = _query(raw_dir, labelled, keep, params, share).df()
    frame = frame.rename(columns={"snapshot": "event_timestamp"})
    frame["customer_id"] = frame["customer_id"].astype("int64")
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"]).astype("datetime64[ns]")
    frame["label"] = frame["label"].astype("int64")
    frame = frame[[*columns, "label"]]  # sorted by ORDER BY ALL (the keys are unique per row)
    frame.attrs["customer_share"] = share
    frame.attrs["label_source"] = source
    return frame
