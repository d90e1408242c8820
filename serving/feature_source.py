"""Feature vectors for scoring, read through Feast: online for requests, the offline snapshot for
the whole book. Both give :class:`~features.online.FeatureRows` (ids + a float matrix), so the
same scoring code runs on either.

One read fetches everything a request needs: the inputs of all three champions plus the few
attributes the business rules read (holdings, consent, last campaign contact, balances).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serving.catalogue import credit_products, cross_sell_products, holding_feature
from serving.errors import InvalidRequest, Unavailable

if TYPE_CHECKING:
    from features.online import FeatureRows

JOIN_KEY = "customer_id"
#: Features the business rules read (tiers, value, target-list exclusions), model inputs or not;
#: a bank's data may lack some of them (the rules then say what they cannot do).
RULE_FEATURES: tuple[str, ...] = (
    "marketing_consent",
    "segment",
    "region",
    "prod_n_accounts",
    "txn_deposit_balance",
    "credit_balance",
    "txn_card_spend_12m",
    "int_days_since_campaign_contact",
)


def rule_features() -> list[str]:
    """:data:`RULE_FEATURES` and the holdings of every product the rules look at (the offers and
    the credit products of the bank's contract)."""
    products = dict.fromkeys([*cross_sell_products(), *credit_products()])
    return [*RULE_FEATURES, *(holding_feature(p) for p in products)]


class OnlineFeatures:
    """Reads ``names`` (+ the rule features) for customer ids from the online store (SQLite or
    Redis) with :class:`features.online.OnlineReader`."""

    def __init__(self, names: list[str]) -> None:
        from features.online import OnlineReader

        self.store = self._connect()
        try:
            self.reader = OnlineReader(self.store, [*names, *rule_features()])
        except Exception as error:  # a view missing from the registry: not applied yet
            raise Unavailable(f"feature store unavailable: {error}") from error
        self.layout = self.reader.layout
        self.names = self.layout.names

    @staticmethod
    def _connect():
        from features.store import get_store

        try:
            store = get_store()
            store.list_feature_views()  # fails fast when the registry is missing
        except Exception as error:
            raise Unavailable(f"feature store unavailable: {error}") from error
        return store

    def stamp(self) -> object:
        """Changes when the store may hold other values (see ``OnlineReader.stamp``)."""
        try:
            return self.reader.stamp()
        except OSError as error:
            raise Unavailable(f"feature store unavailable: {error}") from error

    def fetch(self, customer_ids: list[int]) -> tuple[FeatureRows, list[int]]:
        """``(rows, unknown)``: one row per known id in request order and the ids the store has
        nothing for. An unreadable store is :class:`Unavailable` with the store's reason."""
        try:
            return self.reader.read(customer_ids)
        except Exception as error:
            raise self._unavailable(error) from error

    async def fetch_async(self, customer_ids: list[int]) -> tuple[FeatureRows, list[int]]:
        """:meth:`fetch` for work on the server's event loop: on a store that reads
        asynchronously (Redis) the views' reads are in flight together
        (:meth:`~features.online.OnlineReader.read_async`); the same rows and errors."""
        try:
            return await self.reader.read_async(customer_ids)
        except Exception as error:
            raise self._unavailable(error) from error

    @staticmethod
    def _unavailable(error: Exception) -> Unavailable:
        return Unavailable(f"online feature store unavailable: {error}")


class SnapshotFeatures(OnlineFeatures):
    """The same vectors as :class:`OnlineFeatures`, read from the offline store at the snapshot the
    online store was loaded from (``features.materialize.latest_snapshot``).

    For batch scoring: one point-in-time join per chunk of customers instead of a key lookup per
    customer, so a million customers take minutes instead of most of an hour. Feast applies the
    same TTL rule as materialisation, so both sources give the same values.
    """

    def __init__(self, names: list[str]) -> None:
        super().__init__(names)
        import pandas as pd

        from features.materialize import latest_snapshot

        try:
            self.snapshot = pd.Timestamp(latest_snapshot())
        except Exception as error:
            raise Unavailable(f"feature snapshot unavailable: {error}") from error
        self.refs = [
            f"{view.name}:{name}" for view, wanted, _, _ in self.reader.plan for name in wanted
        ]

    def fetch(self, customer_ids: list[int]) -> tuple[FeatureRows, list[int]]:
        """``(rows, unknown)`` from one point-in-time join at the snapshot, taken from Feast's
        Arrow answer straight into the matrix; a customer with no feature value at all is
        unknown."""
        import pandas as pd

        from features.online import FeatureRows
        from features.training_set import point_in_time

        ids = [int(i) for i in customer_ids]
        entities = pd.DataFrame({JOIN_KEY: ids, "event_timestamp": self.snapshot})
        try:
            table, at = point_in_time(entities, self.refs)
        except Exception as error:
            raise Unavailable(f"offline feature store unavailable: {error}") from error
        rows = FeatureRows.from_arrow(table, at, ids, self.layout)
        known = rows.known()
        unknown = [i for i, k in zip(ids, known, strict=True) if not k]
        return (rows.take(known) if unknown else rows), unknown

    async def fetch_async(self, customer_ids: list[int]) -> tuple[FeatureRows, list[int]]:
        """:meth:`fetch`, the snapshot's join (not the online read the parent would await)."""
        return self.fetch(customer_ids)


class AsOfFeatures:
    """The same vectors as of a given day: each customer's history strictly before it, computed
    from the raw tables by the feature SQL itself (:func:`features.asof.features_as_of`). For
    application scoring at a decision date; a small feature build per call, so slower than the
    online store (about a second for one customer on the demo bank)."""

    def __init__(self, source: OnlineFeatures, day) -> None:
        import pandas as pd

        self.layout, self.names = source.layout, source.names
        self.snapshot = pd.Timestamp(day).normalize()
        self._check_within_data()

    def _check_within_data(self) -> None:
        """Refuse a day past the data (InvalidRequest): its months would read as months without
        a transaction, and a quiet customer as one leaving. The newest snapshot sees all the data;
        a day up to ``features.ttl_days`` after it is allowed, the time a snapshot stays valid
        (the latest load may lag the calendar by some days)."""
        import pandas as pd

        from crmscore.settings import get_settings
        from features.materialize import latest_snapshot

        try:
            newest = pd.Timestamp(latest_snapshot()).tz_convert(None)
        except Exception as error:  # no feature tables: the features cannot be computed either
            raise Unavailable(f"features as of a day unavailable: {error}") from error
        limit = newest + pd.Timedelta(days=get_settings().features.ttl_days)
        if self.snapshot > limit:
            raise InvalidRequest(
                f"as_of: {self.snapshot:%Y-%m-%d} is after the data, which end before "
                f"{newest:%Y-%m-%d}: a day up to {limit:%Y-%m-%d} can be scored",
                field="as_of",
            )

    def fetch(self, customer_ids: list[int]) -> tuple[FeatureRows, list[int]]:
        """``(rows, unknown)``: a customer with no history before the day is unknown."""
        import pandas as pd

        from features.asof import features_as_of
        from features.catalog import as_model_dtypes
        from features.online import FeatureRows

        ids = [int(i) for i in customer_ids]
        entities = pd.DataFrame({JOIN_KEY: ids, "event_timestamp": self.snapshot})
        try:
            found = features_as_of(entities, self.names)
        except Exception as error:  # raw tables unreadable, features never built
            raise Unavailable(
                f"features as of {self.snapshot:%Y-%m-%d} unavailable: {error}"
            ) from error
        frame = as_model_dtypes(pd.concat([entities[[JOIN_KEY]], found], axis=1))
        frame = frame.reindex(columns=[JOIN_KEY, *self.names])
        known = frame[self.names].notna().any(axis=1).to_numpy()
        rows = FeatureRows.from_frame(frame, self.layout)
        unknown = [i for i, k in zip(ids, known, strict=True) if not k]
        return (rows.take(known) if unknown else rows), unknown
