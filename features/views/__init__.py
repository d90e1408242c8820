"""The feature view groups, one module each, in the order they are built and listed.

The groups depend on the bank's contract (its products, transaction types, channels and category
orders shape both the SQL and the features), so they are built per contract, once.
"""

from __future__ import annotations

from functools import lru_cache

from crmscore.contract import BankContract, current_contract
from features.spec import FeatureGroup
from features.views import credit, interactions, products, profile, transactions

#: Every view's module, in build and listing order.
_MODULES = (transactions, interactions, products, credit, profile)


def groups(contract: BankContract | None = None) -> tuple[FeatureGroup, ...]:
    """The feature groups for ``contract`` (default: the configured dataset's)."""
    return _groups(contract or current_contract())


@lru_cache(maxsize=8)
def _groups(contract: BankContract) -> tuple[FeatureGroup, ...]:
    return tuple(module.group(contract) for module in _MODULES)


#: The view names, whatever the contract (a dataset may lack some of them).
VIEW_NAMES: tuple[str, ...] = tuple(module.__name__.rsplit(".", 1)[-1] for module in _MODULES)
