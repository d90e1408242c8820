"""Check raw tables against the contract in :mod:`crmscore.schema`.

Every rule is driven by the schema's metadata (dtypes, nullability, categories, ranges, primary and
foreign keys, time order, event times) plus a short declarative list of cross-column rules below.
Checks are vectorised (pandas/NumPy), so ten million transactions take seconds, and they collect
*every* problem before raising, so a bank fixes its export once rather than once per error:

>>> validate_dataset(tables)                      # doctest: +SKIP
DatasetValidationError: 2 problems in the dataset:
- transactions.account_id [foreign_key] must exist in accounts.account_id: 1 row; first: row 4 ...
- customers.gender [category] must be one of F, M, X: 1 row; first: row 2 (customer_id=2): 'f'

Row numbers count data rows from 1 in table order (a CSV's header line is not a row).

Not every finding stops a dataset. Some are **warnings**: kept, counted and shown, so a bank sees
them without losing the data (an overdraft beyond the arranged limit happens and is a risk signal;
a column the contract does not know is ignored and listed). Only errors raise.

Categorical values are checked against the dataset's contract (its ``bank.yaml``,
:mod:`crmscore.contract`), not against fixed lists.

Values are never coerced silently: :func:`conform_table` casts a frame to the schema's dtypes only
where the cast is exact (``"42"`` -> 42, ``3.0`` -> 3) and reports everything else (``"abc"`` in an
integer column, ``2024-02-30``, ``3.5`` in an integer column) as a ``type`` problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from crmscore.contract import (
    CREDIT_KINDS,
    DEFAULT_CONTRACT,
    OVERDRAFT_KINDS,
    BankContract,
)
from crmscore.schema import TABLES, Column, Table

#: Allowed rounding error when comparing balances with their floor (half a cent).
BALANCE_TOLERANCE = 0.005
#: How many offending rows a problem quotes.
MAX_EXAMPLES = 5

#: In-memory pandas dtype of each schema dtype. Nullable extension types keep integers exact when
#: a column has gaps; dates are midnight timestamps; timestamps are naive UTC.
PANDAS_DTYPES: dict[str, object] = {
    "string": pd.StringDtype("pyarrow"),
    "int64": pd.Int64Dtype(),
    "float64": np.dtype("float64"),
    "bool": pd.BooleanDtype(),
    "date": np.dtype("datetime64[ns]"),
    "timestamp": np.dtype("datetime64[ns]"),
}

_TYPE_HINTS = {
    "int64": "is not an integer",
    "float64": "is not a finite number",
    "bool": "is not a boolean (true/false/1/0)",
    "date": "is not a valid date (YYYY-MM-DD)",
    "timestamp": "is not a valid timestamp (ISO 8601)",
    "string": "is not text",
}
_TRUE = ("true", "1")
_FALSE = ("false", "0")


@dataclass(frozen=True)
class Problem:
    """One broken rule: where (table, column), which rule, how many rows and the first few.

    ``severity`` "warning" marks a finding that is reported but keeps the data; ``source`` says
    where in the bank's own files the column came from (``KUNDEN.csv, column BEZIRK``) when a
    mapping renamed it.
    """

    table: str
    column: str | None
    rule: str
    detail: str
    count: int = 0
    examples: tuple[str, ...] = ()
    severity: str = "error"
    source: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        if self.source:
            where += f" ({self.source})"
        text = f"{where} [{self.rule}] {self.detail}"
        if self.count:
            text += f": {self.count} row{'s' if self.count > 1 else ''}"
        if self.examples:
            text += "; first: " + "; ".join(self.examples)
        return text


class DatasetValidationError(ValueError):
    """A dataset breaks the raw data contract. ``problems`` lists every broken rule."""

    def __init__(self, problems: Iterable[Problem], source: object | None = None) -> None:
        self.problems = [p for p in problems if p.is_error]
        self.source = source
        n = len(self.problems)
        where = f" {source}" if source is not None else " the dataset"
        lines = [f"{n} problem{'s' if n != 1 else ''} in{where}:"]
        lines += [f"- {p}" for p in self.problems]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Types: cast exactly or report
# --------------------------------------------------------------------------------------------


def conform_table(table: Table, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """Return ``frame`` cast to ``table``'s dtypes (schema column order) and the problems found.

    Reports missing required columns, and every value that cannot be cast exactly (those values
    become null in the returned frame); columns the table does not know are dropped with a
    warning, optional columns that are absent stay absent. Columns already in the canonical dtype
    are reused.
    """
    typed, problems, _ = _conform(table, frame)
    return typed, problems


def _conform(
    table: Table, frame: pd.DataFrame
) -> tuple[pd.DataFrame, list[Problem], dict[str, np.ndarray]]:
    problems: list[Problem] = []
    bad_cells: dict[str, np.ndarray] = {}
    extra = [str(name) for name in frame.columns if name not in table.column_names]
    if extra:
        detail = f"ignored: not columns of this table ({', '.join(extra)})"
        problems.append(Problem(table.name, None, "extra_columns", detail, severity="warning"))
    typed: dict[str, pd.Series] = {}
    for column in table.columns:
        if column.name not in frame.columns:
            if not column.optional:
                problems.append(
                    Problem(table.name, column.name, "columns", "required column missing")
                )
            continue
        raw = frame[column.name]
        if isinstance(raw, pd.DataFrame):  # the same header twice
            problems.append(Problem(table.name, column.name, "columns", "appears more than once"))
            continue
        values, bad, detail = cast_column(raw, column.dtype)
        typed[column.name] = values
        if bad.any():
            bad_cells[column.name] = bad
            problems.append(_problem(table, frame, bad, "type", detail, column.name, raw=raw))
    return pd.DataFrame(typed, index=pd.RangeIndex(len(frame))), problems, bad_cells


def cast_column(values: pd.Series, dtype: str) -> tuple[pd.Series, np.ndarray, str]:
    """Cast ``values`` to the schema ``dtype`` exactly.

    Returns the cast series (positional index, bad values set to null), a boolean mask of values
    that could not be represented, and a sentence describing what is wrong with them.
    """
    values = values.reset_index(drop=True)
    target = PANDAS_DTYPES[dtype]
    if values.dtype == target and dtype not in ("date", "float64"):
        return values, np.zeros(len(values), dtype=bool), ""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.cat.categories.dtype)
    if _is_text(values):
        return _parse_text(values.astype(PANDAS_DTYPES["string"]), dtype)
    present = values.notna().to_numpy()
    mismatch = f"has type {values.dtype}, expected {dtype}"
    is_bool = pd.api.types.is_bool_dtype(values.dtype)
    is_number = pd.api.types.is_numeric_dtype(values.dtype) and not is_bool
    is_time = pd.api.types.is_datetime64_any_dtype(values.dtype)
    if dtype in ("int64", "float64", "bool") and is_bool:
        if dtype == "bool":
            return values.astype(target), np.zeros(len(values), dtype=bool), ""
    elif dtype in ("int64", "float64", "bool") and is_number:
        return _cast_number(values, dtype)
    elif dtype in ("date", "timestamp") and is_time:
        return _cast_time(values, dtype)
    return _all_null(len(values), dtype), present, mismatch


def _all_null(length: int, dtype: str) -> pd.Series:
    return pd.Series([None] * length, dtype=object).astype(PANDAS_DTYPES[dtype])


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values.dtype) or values.dtype == object


def _parse_text(text: pd.Series, dtype: str) -> tuple[pd.Series, np.ndarray, str]:
    """Parse strings (CSV cells, object columns); an empty cell is null, nothing else is."""
    present = text.notna().to_numpy()
    hint = _TYPE_HINTS[dtype]
    if dtype == "string":
        return text, np.zeros(len(text), dtype=bool), ""
    stripped = text.str.strip()
    if dtype == "int64":
        # At most 18 digits: every such number fits int64, and Arrow's cast is exact (no float).
        ok = _mask(stripped.str.fullmatch(r"[+-]?\d{1,18}"))
        parsed = stripped.where(ok).astype("int64[pyarrow]").astype(PANDAS_DTYPES["int64"])
        return parsed, present & ~ok, hint
    if dtype == "float64":
        numbers = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        bad = present & ~np.isfinite(numbers)
        numbers[bad] = np.nan
        return pd.Series(numbers), bad, hint
    if dtype == "bool":
        lower = stripped.str.lower()
        is_true, is_false = _mask(lower.isin(_TRUE)), _mask(lower.isin(_FALSE))
        parsed = pd.Series(pd.array(np.where(is_true, True, False), dtype="boolean"))
        parsed[~(is_true | is_false)] = pd.NA
        return parsed, present & ~(is_true | is_false), hint
    # Dates and timestamps: ISO 8601; an explicit offset is converted to naive UTC.
    parsed = pd.to_datetime(stripped, format="ISO8601", errors="coerce", utc=True)
    parsed = parsed.dt.tz_convert(None).astype(PANDAS_DTYPES[dtype])
    bad = present & parsed.isna().to_numpy()
    if dtype == "date":
        bad |= present & _mask(parsed != parsed.dt.normalize())
    return parsed.where(~bad), bad, hint


def _cast_number(values: pd.Series, dtype: str) -> tuple[pd.Series, np.ndarray, str]:
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    present = values.notna().to_numpy()
    if dtype == "float64":
        bad = present & ~np.isfinite(numbers)
        numbers[bad] = np.nan
        return pd.Series(numbers), bad, _TYPE_HINTS[dtype]
    if dtype == "bool":
        bad = present & ~np.isin(numbers, (0.0, 1.0))
        parsed = pd.Series(pd.array(numbers == 1.0, dtype="boolean"))
        parsed[~present | bad] = pd.NA
        return parsed, bad, "is not a boolean (0 or 1)"
    # int64: integers pass unchanged (bar uint64 overflow); floats only when integral.
    if pd.api.types.is_integer_dtype(values.dtype):
        if pd.api.types.is_unsigned_integer_dtype(values.dtype):
            bad = _mask(values > np.iinfo(np.int64).max)
            return values.where(~bad).astype(PANDAS_DTYPES["int64"]), bad, "exceeds int64"
        return values.astype(PANDAS_DTYPES["int64"]), np.zeros(len(values), dtype=bool), ""
    with np.errstate(invalid="ignore"):
        bad = present & ~(np.isfinite(numbers) & (numbers == np.round(numbers)))
        bad |= present & (np.abs(numbers) >= 2.0**63)
    parsed = pd.Series(pd.array(np.where(bad | ~present, 0, numbers).astype(np.int64), "Int64"))
    parsed[bad | ~present] = pd.NA
    return parsed, bad, _TYPE_HINTS["int64"]


def _cast_time(values: pd.Series, dtype: str) -> tuple[pd.Series, np.ndarray, str]:
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    # Nanosecond pandas timestamps span 1677-2262; a bank date outside that is a broken value.
    lo, hi = pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")
    bad = _mask((values < lo) | (values > hi))
    values = values.where(~bad).astype(PANDAS_DTYPES[dtype])
    hint = "is outside the supported range (1677-2262)"
    if dtype == "date":
        has_time = _mask(values.notna() & (values != values.dt.normalize()))
        if has_time.any():
            hint = "is not a date (has a time of day)" if not bad.any() else hint
            bad |= has_time
            values = values.where(~bad)
    return values, bad, hint


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlyWhen:
    """``column`` of ``table`` may hold a value only on rows whose ``when`` is one of ``values``."""

    table: str
    column: str
    when: str
    values: tuple[str, ...]
    #: ``values`` are transaction kinds: the rule holds on the bank's types of those kinds.
    kinds: bool = False

    def allowed(self, contract: BankContract) -> tuple[str, ...]:
        return contract.transaction_types_of(*self.values) if self.kinds else self.values


#: Columns that only make sense for some kinds of row (declared here because schema.Column has no
#: field for it). They read as: merchant_category only on card spending, and so on.
ONLY_WHEN: tuple[OnlyWhen, ...] = (
    OnlyWhen("transactions", "merchant_category", "type", ("card_spend",), kinds=True),
    OnlyWhen("interactions", "complaint_category", "kind", ("complaint",)),
    OnlyWhen("interactions", "resolution_days", "kind", ("complaint",)),
    OnlyWhen("interactions", "satisfaction_score", "kind", ("satisfaction_survey",)),
)


def validate_dataset(
    tables: Mapping[str, pd.DataFrame],
    as_of: datetime | None = None,
    contract: BankContract = DEFAULT_CONTRACT,
) -> list[Problem]:
    """Raise :class:`DatasetValidationError` listing every rule the tables break; return the
    warnings (findings that keep the data).

    ``tables`` maps table names to frames (any reasonable dtypes: they are cast exactly first).
    ``as_of`` is the moment the data was extracted: no event may lie after it (default: now, UTC).
    ``contract`` gives the allowed category values (the dataset's ``bank.yaml``).
    """
    _, problems = check_dataset(tables, as_of, contract)
    if any(p.is_error for p in problems):
        raise DatasetValidationError(problems)
    return problems


def check_dataset(
    tables: Mapping[str, pd.DataFrame],
    as_of: datetime | None = None,
    contract: BankContract = DEFAULT_CONTRACT,
) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Cast every table to the schema and check every rule.

    Returns the typed tables (those present and not empty) and the problems, errors and warnings
    (:attr:`Problem.is_error`); no error means the data is valid. An optional table may be absent;
    one with no rows is treated as absent, with a warning.
    """
    as_of_ts = _as_of(as_of)
    typed: dict[str, pd.DataFrame] = {}
    bad_cells: dict[str, dict[str, np.ndarray]] = {}
    problems: list[Problem] = []
    for name in tables:
        if name not in TABLES:
            problems.append(Problem(str(name), None, "tables", "is not a table of the schema"))
    for name, table in TABLES.items():
        if name not in tables:
            if not table.optional:
                problems.append(Problem(name, None, "tables", "table missing"))
            continue
        if table.optional and len(tables[name]) == 0:
            detail = "has no rows: treated as absent (its features will be missing)"
            problems.append(Problem(name, None, "non_empty", detail, severity="warning"))
            continue
        typed[name], found, bad_cells[name] = _conform(table, tables[name])
        problems += found
    for name, frame in typed.items():
        problems += _check_table(TABLES[name], frame, bad_cells[name], typed, as_of_ts, contract)
    for check in CROSS_TABLE_CHECKS:
        problems += check(typed, contract)
    return typed, problems


def _as_of(as_of: datetime | None) -> pd.Timestamp:
    stamp = pd.Timestamp(as_of if as_of is not None else datetime.now(UTC))
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def _check_table(
    table: Table,
    frame: pd.DataFrame,
    bad_cells: dict[str, np.ndarray],
    tables: Mapping[str, pd.DataFrame],
    as_of: pd.Timestamp,
    contract: BankContract,
) -> list[Problem]:
    problems: list[Problem] = []
    if len(frame) == 0:
        return [Problem(table.name, None, "non_empty", "has no rows")]
    for column in table.columns:
        if column.name in frame:
            problems += _check_column(table, column, frame, bad_cells.get(column.name), contract)
    problems += _check_primary_key(table, frame)
    for fk in table.foreign_keys:
        parent = tables.get(fk.ref_table)
        if fk.column in frame and parent is not None and fk.ref_column in parent:
            orphan = _mask(frame[fk.column].notna() & ~frame[fk.column].isin(parent[fk.ref_column]))
            detail = f"must exist in {fk.ref_table}.{fk.ref_column}"
            problems += _problems(table, frame, orphan, "foreign_key", detail, fk.column)
    for earlier, later in table.time_order:
        if earlier in frame and later in frame:
            wrong = _mask(frame[earlier] > frame[later])
            detail = f"must not be before {earlier}"
            problems += _problems(table, frame, wrong, "time_order", detail, later, (earlier,))
    for name in table.event_time:
        if name in frame:
            future = _mask(frame[name] > as_of)
            detail = f"must not be after the as-of time {as_of}"
            problems += _problems(table, frame, future, "not_after_as_of", detail, name)
    for rule in ONLY_WHEN:
        if rule.table == table.name and rule.column in frame and rule.when in frame:
            allowed = rule.allowed(contract)
            wrong = _mask(frame[rule.column].notna() & ~frame[rule.when].isin(allowed))
            detail = f"only allowed when {rule.when} is {' or '.join(allowed) or '(none declared)'}"
            problems += _problems(
                table, frame, wrong, "only_when", detail, rule.column, (rule.when,)
            )
    return problems


def _check_column(
    table: Table,
    column: Column,
    frame: pd.DataFrame,
    bad: np.ndarray | None,
    contract: BankContract,
) -> list[Problem]:
    values = frame[column.name]
    problems: list[Problem] = []
    if not column.may_be_null:
        missing = values.isna().to_numpy()
        if bad is not None:  # already reported as unreadable
            missing &= ~bad
        problems += _problems(table, frame, missing, "not_null", "must not be empty", column.name)
    if column.vocabulary is not None:
        allowed = contract.vocabulary(column.vocabulary)
        unknown = _mask(values.notna() & ~values.isin(allowed))
        detail = f"must be one of {', '.join(allowed)} (bank.yaml {column.vocabulary})"
        problems += _problems(table, frame, unknown, "category", detail, column.name)
    if column.month_end:
        wrong = _mask(values.notna() & ~values.dt.is_month_end)
        detail = "must be the last day of its month"
        problems += _problems(table, frame, wrong, "month_end", detail, column.name)
    if column.min is not None or column.max is not None:
        out = np.zeros(len(values), dtype=bool)
        if column.min is not None:
            out |= _mask(values < column.min)
        if column.max is not None:
            out |= _mask(values > column.max)
        problems += _problems(table, frame, out, "range", _range_text(column), column.name)
    return problems


def _range_text(column: Column) -> str:
    def fmt(x: float) -> str:
        return f"{x:g}"

    if column.min is not None and column.max is not None:
        return f"must be between {fmt(column.min)} and {fmt(column.max)}"
    if column.min is not None:
        return f"must be >= {fmt(column.min)}"
    return f"must be <= {fmt(column.max)}"


def _check_primary_key(table: Table, frame: pd.DataFrame) -> list[Problem]:
    key = [c for c in table.primary_key if c in frame]
    if len(key) != len(table.primary_key):
        return []
    # Rows with an empty key part are reported by not_null, not as duplicates of each other.
    complete = frame[key].notna().all(axis=1).to_numpy()
    repeated = frame.duplicated(subset=key, keep="first").to_numpy() & complete
    detail = f"primary key ({', '.join(key)}) must be unique"
    return _problems(table, frame, repeated, "unique", detail, ", ".join(key))


# --------------------------------------------------------------------------------------------
# Cross-table rules
# --------------------------------------------------------------------------------------------


def _lookup(parent: pd.DataFrame, key: str, keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row positions in ``parent`` of each of ``keys`` (first match) and whether it was found.

    ``parent`` is a typed frame (positional index). Missing keys get position 0 and found=False,
    so callers can gather with the positions and then mask with ``found``.
    """
    unique = parent[[key]].dropna().drop_duplicates()
    positions = pd.Index(unique[key]).get_indexer(keys)
    found = positions >= 0
    rows = unique.index.to_numpy()[np.where(found, positions, 0)]
    return rows, found


def _check_balance_floor(
    tables: Mapping[str, pd.DataFrame], contract: BankContract
) -> list[Problem]:
    """Deposit accounts never go below zero (an error); accounts that may be overdrawn (current
    accounts, cards) going below minus their arranged limit is an unarranged overdraft: real,
    common and a risk signal, so it is reported as a warning and kept (features count it)."""
    tx, accounts = tables.get("transactions"), tables.get("accounts")
    if not _has(tx, "account_id", "balance_after") or not _has(
        accounts, "account_id", "product", "limit_amount"
    ):
        return []
    rows, found = _lookup(accounts, "account_id", tx["account_id"])
    overdraft_products = contract.products_of(OVERDRAFT_KINDS)
    may_go_negative = _mask(accounts["product"].isin(overdraft_products))[rows]
    limit = accounts["limit_amount"].to_numpy(dtype=float)[rows]
    balance = tx["balance_after"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        below_zero = found & ~may_go_negative & (balance < -BALANCE_TOLERANCE)
        beyond_limit = found & may_go_negative & (balance < -limit - BALANCE_TOLERANCE)
    context = {
        "product": (accounts["product"], rows),
        "limit_amount": (accounts["limit_amount"], rows),
    }
    table = TABLES["transactions"]
    others = ", ".join(p for p in contract.product_names if p not in overdraft_products)
    floor = (
        f"must be >= 0 on accounts that cannot be overdrawn ({others}; tolerance "
        f"{BALANCE_TOLERANCE})"
    )
    overdraft = (
        f"below minus the arranged limit on {'/'.join(overdraft_products)} accounts (an "
        "unarranged overdraft): kept, and counted by the overdraft features"
    )
    return [
        *_problems(table, tx, below_zero, "balance_floor", floor, "balance_after", (), context),
        *_problems(
            table, tx, beyond_limit, "overdraft_beyond_limit", overdraft, "balance_after", (),
            context, severity="warning",
        ),
    ]  # fmt: skip


@dataclass(frozen=True)
class _Chronology:
    """``table.column`` must not lie before (or after the day of) a date on the referenced row.

    E.g. a transaction (``transactions.ts``) cannot precede its account's ``open_date``.
    """

    table: str
    column: str
    key: str
    parent: str
    parent_column: str
    rule: str
    detail: str
    after: bool = False  # False: not before the parent date; True: not after its day

    def __call__(self, tables: Mapping[str, pd.DataFrame], contract: BankContract) -> list[Problem]:
        child, parent = tables.get(self.table), tables.get(self.parent)
        if not _has(child, self.key, self.column) or not _has(parent, self.key, self.parent_column):
            return []
        rows, found = _lookup(parent, self.key, child[self.key])
        bound = parent[self.parent_column].to_numpy()[rows]
        value = child[self.column].to_numpy()
        broken = value >= bound + np.timedelta64(1, "D") if self.after else value < bound
        context = {self.parent_column: (parent[self.parent_column], rows)}
        return _problems(
            TABLES[self.table],
            child,
            found & _mask(broken),
            self.rule,
            self.detail,
            self.column,
            (),
            context,
        )


_CHRONOLOGY = (
    _Chronology("transactions", "ts", "account_id", "accounts", "open_date", "not_before_open",
                "must not be before the account's accounts.open_date"),
    _Chronology("transactions", "ts", "account_id", "accounts", "close_date", "not_after_close",
                "must not be after the day of the account's accounts.close_date", after=True),
    _Chronology("credit_status", "month", "account_id", "accounts", "open_date",
                "not_before_open", "must not be before the account's accounts.open_date"),
    _Chronology("accounts", "open_date", "customer_id", "customers", "join_date",
                "not_before_join", "must not be before the customer's customers.join_date"),
)  # fmt: skip


def _check_credit_products_only(
    tables: Mapping[str, pd.DataFrame], contract: BankContract
) -> list[Problem]:
    """credit_status rows exist only for credit products (cards, loans, mortgages)."""
    status, accounts = tables.get("credit_status"), tables.get("accounts")
    if not _has(status, "account_id") or not _has(accounts, "account_id", "product"):
        return []
    rows, found = _lookup(accounts, "account_id", status["account_id"])
    credit = contract.products_of(CREDIT_KINDS)
    is_credit = _mask(accounts["product"].isin(credit))[rows]
    wrong = found & ~is_credit
    detail = f"must reference an account whose product is a credit product ({', '.join(credit)})"
    context = {"product": (accounts["product"], rows)}
    return _problems(
        TABLES["credit_status"], status, wrong, "credit_product", detail, "account_id", (), context
    )


CrossTableCheck = Callable[[Mapping[str, pd.DataFrame], BankContract], list[Problem]]
CROSS_TABLE_CHECKS: tuple[CrossTableCheck, ...] = (
    _check_balance_floor,
    *_CHRONOLOGY,
    _check_credit_products_only,
)


def _has(frame: pd.DataFrame | None, *columns: str) -> bool:
    return frame is not None and len(frame) > 0 and all(c in frame for c in columns)


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def _mask(condition: pd.Series | np.ndarray) -> np.ndarray:
    """A plain boolean array where unknown (null) comparisons count as False."""
    if isinstance(condition, pd.Series):
        return condition.to_numpy(dtype=bool, na_value=False)
    return np.asarray(condition, dtype=bool)


def _problems(
    table: Table,
    frame: pd.DataFrame,
    mask: np.ndarray,
    rule: str,
    detail: str,
    column: str,
    also: tuple[str, ...] = (),
    context: Mapping[str, tuple[pd.Series, np.ndarray]] | None = None,
    severity: str = "error",
) -> list[Problem]:
    if not mask.any():
        return []
    found = _problem(table, frame, mask, rule, detail, column, also, context)
    return [found if severity == "error" else replace(found, severity=severity)]


def _problem(
    table: Table,
    frame: pd.DataFrame,
    mask: np.ndarray,
    rule: str,
    detail: str,
    column: str,
    also: tuple[str, ...] = (),
    context: Mapping[str, tuple[pd.Series, np.ndarray]] | None = None,
    raw: pd.Series | None = None,
) -> Problem:
    """Quote the first offending rows: row number, primary key, the value and related values."""
    positions = np.flatnonzero(mask)
    examples = []
    for pos in positions[:MAX_EXAMPLES]:
        key = ", ".join(
            f"{k}={_fmt(frame[k].iat[pos])}"
            for k in table.primary_key
            if k in frame and k != column and isinstance(frame[k], pd.Series)
        )
        text = f"row {pos + 1}" + (f" ({key})" if key else "")
        if raw is not None:
            text += f": {_fmt(raw.iat[pos])}"
        elif column in frame:
            shown = [f"{c}={_fmt(frame[c].iat[pos])}" for c in (*also, column) if c in frame]
            shown += [
                f"{c}={_fmt(src.iat[rows[pos]])}" for c, (src, rows) in (context or {}).items()
            ]
            if len(shown) > 1:
                text += ": " + ", ".join(shown)
            else:
                text += f": {_fmt(frame[column].iat[pos])}"
        examples.append(text)
    return Problem(table.name, column, rule, detail, int(len(positions)), tuple(examples))


def _fmt(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "null"
    if isinstance(value, pd.Timestamp | np.datetime64):
        stamp = pd.Timestamp(value)
        if pd.isna(stamp):
            return "null"
        return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float | np.floating):
        return f"{value:g}" if abs(value) < 1e15 else repr(float(value))
    return str(value)
