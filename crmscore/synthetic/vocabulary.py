"""The simulator's own category values, and their translation into a bank's contract.

The simulation is written against crmscore's default vocabulary (:data:`SIMULATED`: eight products
with known behaviour, nine transaction types...). A bank to simulate may declare its own values in
a ``bank.yaml``; :class:`Translation` maps every simulated value to the declared one when the raw
tables are written: products, transaction types and channels by their *kind* (the simulated
mortgage becomes the bank's first product of kind ``mortgage``), plain vocabularies by position
(ordered ones, segments and income bands, keep their order).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmscore.contract import (
    BANK_INITIATED_KINDS,
    DEFAULT_CONTRACT,
    INTERACTION_KINDS,
    BankContract,
)
from crmscore.schema import TABLES

#: The vocabulary the simulation is written in.
SIMULATED = DEFAULT_CONTRACT
PRODUCTS = SIMULATED.product_names
CROSS_SELL_PRODUCTS = SIMULATED.cross_sell_products
CREDIT_PRODUCTS = SIMULATED.credit_products
TRANSACTION_TYPES = tuple(SIMULATED.transaction_types)
TRANSACTION_CHANNELS = tuple(SIMULATED.channels)
MERCHANT_CATEGORIES = tuple(SIMULATED.merchant_categories)
INTERACTION_CHANNELS = tuple(SIMULATED.interaction_channels)
COMPLAINT_CATEGORIES = tuple(SIMULATED.complaint_categories)
GENDERS = tuple(SIMULATED.genders)
OCCUPATIONS = tuple(SIMULATED.occupations)
INCOME_BANDS = tuple(SIMULATED.income_bands)
SEGMENTS = tuple(SIMULATED.segments)
#: Transactions the customer initiates (interest, fees and penalties are the bank's doing).
CUSTOMER_INITIATED_TYPES = tuple(
    t for t, kind in SIMULATED.transaction_types.items() if kind not in BANK_INITIATED_KINDS
)
__all__ = ["INTERACTION_KINDS", "Translation"]


class Translation:
    """Simulated value -> the target contract's value, per contract vocabulary."""

    def __init__(self, target: BankContract) -> None:
        self.target = target
        self.maps: dict[str, dict[str, str]] = {}
        if target == SIMULATED:
            return
        self.maps["products"] = {
            name: _first_of_kind(target.products, product.kind, name, "product")
            for name, product in SIMULATED.products.items()
        }
        self.maps["transaction_types"] = {
            name: _first_of_kind(target.transaction_types, kind, name, "transaction type")
            for name, kind in SIMULATED.transaction_types.items()
        }
        self.maps["channels"] = _by_kind(SIMULATED.channels, target.channels)
        for ordered in ("segments", "income_bands"):
            self.maps[ordered] = _by_rank(SIMULATED.vocabulary(ordered), target.vocabulary(ordered))
        # Regions are drawn from the target's list directly (population.make_customers).
        for plain in ("occupations", "genders", "merchant_categories",
                      "interaction_channels", "complaint_categories"):  # fmt: skip
            self.maps[plain] = _by_position(SIMULATED.vocabulary(plain), target.vocabulary(plain))

    def products(self, frame: pd.DataFrame) -> pd.DataFrame:
        """An oracle frame's ``product`` column in the target's product names."""
        mapping = self.maps.get("products")
        if not mapping:
            return frame
        values = frame["product"].astype(object)
        return frame.assign(product=values.map(mapping).where(values.isin(mapping), values))

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (raw table ``name``, simulated values) in the target contract's values."""
        if not self.maps:
            return frame
        renamed = {}
        for column in TABLES[name].columns:
            mapping = self.maps.get(column.vocabulary or "")
            if mapping and column.name in frame:
                values = frame[column.name].astype(object)
                renamed[column.name] = values.map(mapping).where(values.isin(mapping), values)
        return frame.assign(**renamed) if renamed else frame


def _first_of_kind(declared: dict, kind, simulated: str, what: str) -> str:
    for name, value in declared.items():
        if getattr(value, "kind", value) == kind:
            return name
    raise ValueError(
        f"the synthetic bank simulates a {what} of kind {kind.value!r} ({simulated}); the bank "
        f"contract declares none: add one to bank.yaml"
    )


def _by_kind(simulated: dict, declared: dict) -> dict[str, str]:
    """The i-th simulated value of a kind -> the i-th declared value of that kind (cycling)."""
    out = {}
    for kind in dict.fromkeys(simulated.values()):
        mine = [n for n, k in simulated.items() if k == kind]
        theirs = [n for n, k in declared.items() if k == kind]
        if not theirs:
            raise ValueError(
                f"the synthetic bank simulates channels of kind {kind.value!r}; the bank contract "
                "declares none: add one to bank.yaml"
            )
        out.update({name: theirs[i % len(theirs)] for i, name in enumerate(mine)})
    return out


def _by_rank(simulated: tuple[str, ...], declared: tuple[str, ...]) -> dict[str, str]:
    """Ordered levels spread over the declared ones, keeping their order."""
    positions = np.round(np.linspace(0, len(declared) - 1, len(simulated))).astype(int)
    return {value: declared[p] for value, p in zip(simulated, positions, strict=True)}


def _by_position(simulated: tuple[str, ...], declared: tuple[str, ...]) -> dict[str, str]:
    return {value: declared[i % len(declared)] for i, value in enumerate(simulated)}
