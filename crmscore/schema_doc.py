"""The raw data contract as Markdown, generated from :mod:`crmscore.schema` (``crmscore schema``).

The README's "Raw data schema" section is this function's output, and a test keeps them equal.
"""

from __future__ import annotations

from crmscore.schema import TABLES, Column, Table
from crmscore.validation import BALANCE_TOLERANCE, ONLY_WHEN


def schema_markdown() -> str:
    """One Markdown table per raw table: column, type, nullable, allowed values, meaning."""
    parts = [
        "A dataset is a folder with one entry per table: `<table>/` (Parquet parts), "
        "`<table>.parquet` or `<table>.csv` (header line, empty cell = null, ISO 8601 dates). "
        "`crmscore validate DIR` checks it; `crmscore ingest DIR` validates and copies it to the "
        "data folder, writing nothing if any rule is broken.",
    ]
    for table in TABLES.values():
        parts.append(_table_markdown(table))
    parts.append(_cross_rules_markdown())
    return "\n\n".join(parts) + "\n"


def _table_markdown(table: Table) -> str:
    lines = [
        f"### `{table.name}`",
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
        nullable = "yes" if column.nullable else "no"
        lines.append(
            f"| `{column.name}` | {column.dtype} | {nullable} | {_allowed(column)} "
            f"| {column.description} |"
        )
    return "\n".join(lines)


def _allowed(column: Column) -> str:
    if column.categories is not None:
        return ", ".join(f"`{c}`" for c in column.categories)
    if column.min is not None and column.max is not None:
        return f"{column.min:g} to {column.max:g}"
    if column.min is not None:
        return f"≥ {column.min:g}"
    if column.max is not None:
        return f"≤ {column.max:g}"
    return ""


def _cross_rules_markdown() -> str:
    from crmscore.schema import CREDIT_PRODUCTS, NEGATIVE_BALANCE_PRODUCTS

    only_when = [
        f"`{r.table}.{r.column}` only when `{r.when}` is " + " or ".join(f"`{v}`" for v in r.values)
        for r in ONLY_WHEN
    ]
    rules = [
        "`transactions.balance_after` ≥ −`limit_amount` on "
        + "/".join(f"`{p}`" for p in NEGATIVE_BALANCE_PRODUCTS)
        + f" accounts and ≥ 0 on every other product (tolerance {BALANCE_TOLERANCE})",
        "no transaction before its account's `open_date`",
        "`credit_status` only for " + "/".join(f"`{p}`" for p in CREDIT_PRODUCTS) + " accounts",
        *only_when,
    ]
    return "### Rules across columns and tables\n\n" + "\n".join(f"- {r}" for r in rules)
