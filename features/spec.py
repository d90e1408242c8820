"""What a feature view group is: its features (name, type, description) and the SQL computing them.

Each module in :mod:`features.views` declares one :class:`FeatureGroup` per bank contract (the
bank's products, transaction types and categories shape the SQL and the feature list). The same
declaration feeds the DuckDB build (``sql``) and the Feast definitions (``features``), so a column
cannot exist in a table without a typed, described Feast field, and vice versa (a test checks both
directions).

What a bank's data lacks is declared too: a group ``requires`` its optional tables, a feature
``needs`` its optional columns. The build leaves out every feature whose needs the raw dataset
does not meet (missing, never made up), and the whole group when a table it requires is absent.
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
    #: Optional raw columns it is computed from (``"transactions.channel"``): without them the
    #: feature is left out of the build.
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeatureGroup:
    """A Feast feature view and the SQL that computes its monthly snapshot table.

    ``sql`` is one DuckDB ``SELECT`` returning ``customer_id``, ``event_timestamp`` (the snapshot, a
    month start, UTC), ``known`` and at least the columns in ``features``. It may read the raw
    tables (absent optional columns read as typed NULLs) and the staging tables of
    :mod:`features.staging`.
    """

    name: str
    description: str
    sql: str
    features: tuple[Feature, ...]
    tags: dict[str, str] = field(default_factory=dict)
    #: Optional raw tables it reads (``interactions``, ``credit_status``): without one of them
    #: the whole group is left out.
    requires: tuple[str, ...] = ()

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]
