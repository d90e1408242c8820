"""The bank's lists serving depends on: the products it offers, which of them lend money, their
margins, segments and regions. They are the bank's own (its contract, ``bank.yaml`` beside the
data, :func:`crmscore.contract.current_contract`), read at call time; this is the only module of
``serving/`` that asks the contract for them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crmscore.contract import BankContract, current_contract


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


@dataclass(frozen=True)
class Offers:
    """The cross-sell products as the scoring rules read them, derived once per contract
    version: one contract read per scoring call instead of one per rule (the /score path)."""

    products: tuple[str, ...]
    #: The credit products (may include products not offered for cross-sell).
    credit: tuple[str, ...]
    #: Yearly margin of every product of the contract.
    margin: dict[str, float]
    #: Per product of ``products``: lends money (suitability), and its yearly margin.
    lends: np.ndarray
    margins: np.ndarray

    @classmethod
    def of(cls, contract: BankContract) -> Offers:
        products, credit = contract.cross_sell_products, contract.credit_products
        margin = {name: product.margin for name, product in contract.products.items()}
        return cls(
            products=products,
            credit=credit,
            margin=margin,
            lends=np.array([p in credit for p in products], dtype=bool),
            margins=np.array([margin[p] for p in products], dtype=float),
        )

    def per_product(self, products: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(lends money, yearly margin) of each of ``products``: the products a prediction was
        made for, normally this contract's own (unless it changed in between)."""
        if products == self.products:
            return self.lends, self.margins
        lends = np.array([p in self.credit for p in products], dtype=bool)
        return lends, np.array([self.margin[p] for p in products], dtype=float)


#: The last contract read and its offers: the contract is cached per file version
#: (:func:`crmscore.contract.contract_of`), so the same object means the same offers.
_last: list[tuple[BankContract, Offers]] = []


def offers() -> Offers:
    """:class:`Offers` of the current contract."""
    contract = current_contract()
    last = _last[:1]
    if not last or last[0][0] is not contract:
        last = [(contract, Offers.of(contract))]
        _last[:] = last
    return last[0][1]


def segments() -> tuple[str, ...]:
    return tuple(current_contract().segments)


def regions() -> tuple[str, ...]:
    return tuple(current_contract().regions)


def holding_feature(product: str) -> str:
    """The store feature saying whether a customer holds ``product`` at the snapshot."""
    return f"prod_holds_{product}"
