"""The bank's lists serving depends on: the products it offers, which of them lend money, their
margins, segments and regions. They are the bank's own (its contract, ``bank.yaml`` beside the
data, :func:`crmscore.contract.current_contract`), read at call time; this is the only module of
``serving/`` that asks the contract for them."""

from __future__ import annotations

from crmscore.contract import current_contract


def cross_sell_products() -> tuple[str, ...]:
    """Products the cross-sell model scores, in the contract's order (columns; ties: first)."""
    return current_contract().cross_sell_products


def credit_products() -> tuple[str, ...]:
    """Products that lend money: offered only below ``max_pd``; holding one makes a credit
    customer."""
    return current_contract().credit_products


def margin(product: str) -> float:
    """Yearly margin the bank expects from ``product`` once taken up (currency)."""
    return current_contract().products[product].margin


def margins(products: tuple[str, ...]) -> tuple[float, ...]:
    """:func:`margin` of each of ``products``, from one read of the contract (the /score path)."""
    contract = current_contract()
    return tuple(contract.products[p].margin for p in products)


def segments() -> tuple[str, ...]:
    return tuple(current_contract().segments)


def regions() -> tuple[str, ...]:
    return tuple(current_contract().regions)


def holding_feature(product: str) -> str:
    """The store feature saying whether a customer holds ``product`` at the snapshot."""
    return f"prod_holds_{product}"
