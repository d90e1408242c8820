"""The raw data contract as Markdown, generated from :mod:`crmscore.schema` (``crmscore schema``).

The README's "Raw data schema" section is this function's output, and a test keeps them equal.
"""

from __future__ import annotations

from crmscore.contract import (
    CREDIT_KINDS,
    DEFAULT_CONTRACT,
    INTERACTION_KINDS,
    OVERDRAFT_KINDS,
    ChannelKind,
    ProductKind,
    TransactionKind,
)
from crmscore.schema import TABLES, Column, Table
from crmscore.validation import BALANCE_TOLERANCE, ONLY_WHEN


def schema_markdown() -> str:
    """One Markdown table per raw table: column, type, nullable, allowed values, meaning."""
    parts = [
        "A dataset is a folder with one entry per table: `<table>/` (Parquet parts), "
        "`<table>.parquet` or `<table>.csv` (header line, empty cell = null, ISO 8601 dates), "
        "and optionally `bank.yaml`, the bank's own category values (see below). "
        "`crmscore validate DIR` checks it; `crmscore ingest DIR` validates and copies it to the "
        "data folder, writing nothing if any rule is broken; a bank's own export is read through "
        "`--mapping mapping.yaml`. Tables marked *optional* may be absent, and so may columns "
        "marked *optional* (their features are then missing). Allowed values of categorical "
        "columns come from the named `bank.yaml` vocabulary; the defaults are shown.",
    ]
    for table in TABLES.values():
        parts.append(_table_markdown(table))
    parts.append(_cross_rules_markdown())
    parts.append(_contract_markdown())
    return "\n\n".join(parts) + "\n"


def _table_markdown(table: Table) -> str:
    lines = [
        f"### `{table.name}`" + (" (optional)" if table.optional else ""),
        "",
        table.description,
        "",
        f"Primary key: `{', '.join(table.primary_key)}`.",
    ]
    refs = [f"`{fk.column}` → `{fk.ref_table}.{fk.ref_column}`" for fk in table.foreign_keys]
    if refs:
        lines[-1] += " References: " + ", ".join(refs) + "."
    order = [f"`{a}` ≤ `{b}`" for a, b in table.time_order]
    if order:
        lines[-1] += " Time order: " + ", ".join(order) + "."
    if table.event_time:
        cols = ", ".join(f"`{c}`" for c in table.event_time)
        lines[-1] += f" Not after the as-of time: {cols}."
    lines += [
        "",
        "| column | type | nullable | allowed values | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for column in table.columns:
        nullable = "optional" if column.optional else "yes" if column.nullable else "no"
        lines.append(
            f"| `{column.name}` | {column.dtype} | {nullable} | {_allowed(column)} "
            f"| {column.description} |"
        )
    return "\n".join(lines)


def _allowed(column: Column) -> str:
    if column.vocabulary == "interaction_kinds":
        return ", ".join(f"`{c}`" for c in INTERACTION_KINDS)
    if column.vocabulary is not None:
        values = DEFAULT_CONTRACT.vocabulary(column.vocabulary)
        return (
            f"bank.yaml `{column.vocabulary}` (default " + ", ".join(f"`{c}`" for c in values) + ")"
        )
    if column.month_end:
        return "a month's last day"
    if column.min is not None and column.max is not None:
        return f"{column.min:g} to {column.max:g}"
    if column.min is not None:
        return f"≥ {column.min:g}"
    if column.max is not None:
        return f"≤ {column.max:g}"
    return ""


def _kinds(kinds) -> str:
    return "/".join(f"`{k}`" for k in sorted(kinds))


def _cross_rules_markdown() -> str:
    only_when = [
        f"`{r.table}.{r.column}` only when `{r.when}` is "
        + " or ".join(f"`{v}`" for v in r.values)
        + (" (the bank's types of that kind)" if r.kinds else "")
        for r in ONLY_WHEN
    ]
    rules = [
        f"`transactions.balance_after` ≥ 0 on accounts that cannot be overdrawn (product kinds "
        f"other than {_kinds(OVERDRAFT_KINDS)}; tolerance {BALANCE_TOLERANCE})",
        f"*warning, data kept:* `balance_after` below −`limit_amount` on {_kinds(OVERDRAFT_KINDS)} "
        "accounts (an unarranged overdraft; counted by the overdraft features)",
        "no transaction before its account's `open_date`, none after its `close_date`",
        f"`credit_status` only for credit accounts (product kinds {_kinds(CREDIT_KINDS)})",
        "*warning, data kept:* columns the contract does not know are ignored and listed",
        *only_when,
    ]
    return "### Rules across columns and tables\n\n" + "\n".join(f"- {r}" for r in rules)


#: What each entry of ``bank.yaml`` holds, in the order of :class:`BankContract`.
_CONTRACT_ENTRIES = {
    "regions": "any text",
    "segments": "ordered from the lowest assets to the highest (`segment_rank`)",
    "income_bands": "ordered from the lowest to the highest (`income_band_rank`)",
    "occupations": "any text",
    "genders": "any text (never a feature)",
    "products": "name → `kind` ("
    + ", ".join(f"`{k}`" for k in ProductKind)
    + "), `cross_sell` (offered in campaigns), `margin` (yearly, for expected values); names "
    "become feature names (`prod_holds_<name>`)",
    "transaction_types": "code → kind (" + ", ".join(f"`{k}`" for k in TransactionKind) + ")",
    "channels": "code → kind (" + ", ".join(f"`{k}`" for k in ChannelKind) + ")",
    "merchant_categories": "names (become feature names `txn_spend_<name>_3m`)",
    "interaction_channels": "any text",
    "complaint_categories": "any text",
    "delay_complaint_categories": "the complaint categories about slowness",
}


def _contract_markdown() -> str:
    """The ``bank.yaml`` entries, what they hold and crmscore's defaults."""
    lines = [
        "### `bank.yaml`: the bank's own values",
        "",
        "Every entry is optional; a missing one takes crmscore's default (the synthetic bank's). "
        "Kinds say what a value means to crmscore: features and rules use kinds, so the bank's "
        "names flow through untouched.",
        "",
        "| entry | holds | default |",
        "| --- | --- | --- |",
    ]
    for name, holds in _CONTRACT_ENTRIES.items():
        default = getattr(DEFAULT_CONTRACT, name)
        if name == "products":
            shown = ", ".join(
                f"`{p}` ({v.kind}{', offered' if v.cross_sell else ''})" for p, v in default.items()
            )
        elif isinstance(default, dict):
            shown = ", ".join(f"`{code}`: {kind}" for code, kind in default.items())
        else:
            shown = ", ".join(f"`{v}`" for v in default)
        lines.append(f"| `{name}` | {holds} | {shown} |")
    return "\n".join(lines)
