"""What a feature view group is: its features (name, type, description) and the SQL computing them.

Each module in :mod:`features.views` declares one :class:`FeatureGroup`. The same declaration feeds
the DuckDB build (``sql``) and the Feast definitions (``features``), so a column cannot exist in a
table without a typed, described Feast field, and vice versa (a test checks both directions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: Feast value type: counts and flags are ``int``, amounts and ratios ``float``, labels ``string``.
Kind = Literal["int", "float", "string"]


@dataclass(frozen=True)
class Feature:
    """One feature column: its name (unique across all views), type and plain-language meaning.

    ``description`` is what risk officers and customer managers read next to a reason code, so it
    says what is measured, over which window, and in which unit.
    """

    name: str
    kind: Kind
    description: str


@dataclass(frozen=True)
class FeatureGroup:
    """A Feast feature view and the SQL that computes its monthly snapshot table.

    ``sql`` is one DuckDB ``SELECT`` returning ``customer_id``, ``event_timestamp`` (the snapshot, a
    month start, UTC) and exactly the columns in ``features``. It may read the raw tables
    (``customers``, ``accounts``, ``transactions``, ``interactions``, ``credit_status``) and the
    ``spine`` (one row per customer and month, see :mod:`features.build`).
    """

    name: str
    description: str
    sql: str
    features: tuple[Feature, ...]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]
