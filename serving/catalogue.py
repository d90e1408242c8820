"""The bank's lists serving depends on: products it offers, which of them are credit, segments,
regions. The only module of ``serving/`` that reads them (from :mod:`crmscore.schema` today), so
when the lists come from a per-bank contract at run time, this is the one place to change."""

from __future__ import annotations

from crmscore import schema


def cross_sell_products() -> tuple[str, ...]:
    """Products the cross-sell model scores, in a fixed order (columns, ties: first wins)."""
    return tuple(schema.CROSS_SELL_PRODUCTS)


def credit_products() -> frozenset[str]:
    """Cross-sell products that lend money: offered only to customers whose PD allows it."""
    return frozenset(schema.CREDIT_PRODUCTS)


def segments() -> tuple[str, ...]:
    return tuple(schema.SEGMENTS)


def regions() -> tuple[str, ...]:
    return tuple(schema.REGIONS)


def holding_feature(product: str) -> str:
    """The store feature saying whether a customer holds ``product`` at the snapshot."""
    return f"prod_holds_{product}"
