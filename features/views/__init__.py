"""The feature view groups, one module each, in the order they are built and listed."""

from __future__ import annotations

from features.spec import FeatureGroup
from features.views import credit, interactions, products, profile, transactions

GROUPS: tuple[FeatureGroup, ...] = (
    transactions.GROUP,
    interactions.GROUP,
    products.GROUP,
    credit.GROUP,
    profile.GROUP,
)
