"""Feature vectors for scoring, read through Feast: online for requests, the offline snapshot for
the whole book.

One Feast call fetches everything a request needs: the inputs of all three champions plus the few
attributes the business rules read (holdings, consent, last campaign contact, balances). Feature
references are built from :mod:`features.catalog`, so serving never names a view by hand.
"""

from __future__ import annotations

import pandas as pd

from serving.errors import Unavailable

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
    """:data:`RULE_FEATURES` plus the holdings of every product the rules look at (offers and
    credit products of the bank's contract)."""
    from crmscore.contract import current_contract

    contract = current_contract()
    products = dict.fromkeys([*contract.cross_sell_products, *contract.credit_products])
    return [*RULE_FEATURES, *(f"prod_holds_{p}" for p in products)]


class OnlineFeatures:
    """Reads ``names`` for a list of customer ids from the online store (SQLite or Redis)."""

    def __init__(self, names: list[str]) -> None:
        self.store, served = self._connect()
        views = {}
        for name in dict.fromkeys([*names, *rule_features()]):
            # Not a store feature: an input the model derives itself inside ``prepare`` (e.g.
            # cross-sell's product-aligned columns), or a rule input the bank's data lacks. A
            # truly missing model input still fails there.
            if name in served:
                views[name] = served[name]
        self.names = list(views)
        self.refs = [f"{view}:{name}" for name, view in views.items()]

    @staticmethod
    def _connect():
        """The store, and which view serves each registered feature (from the registry)."""
        from features.store import get_store

        try:
            store = get_store()
            views = store.list_feature_views()  # fails fast when the registry is missing
        except Exception as error:
            raise Unavailable(f"feature store unavailable: {error}") from error
        return store, {f.name: view.name for view in views for f in view.features}

    def fetch(self, customer_ids: list[int]) -> tuple[pd.DataFrame, list[int]]:
        """``(frame, unknown)``: one row per known id in request order (``customer_id`` + every
        feature, model dtypes) and the ids the store has nothing for."""
        from features.catalog import as_model_dtypes

        ids = [int(i) for i in customer_ids]
        if not ids:
            return pd.DataFrame(columns=[JOIN_KEY, *self.names]), []
        frame = self._read(ids).reindex(columns=[JOIN_KEY, *self.names])
        frame[JOIN_KEY] = ids
        frame = as_model_dtypes(frame)
        known = frame[self.names].notna().any(axis=1)  # no feature at all: an unknown customer
        unknown = frame.loc[~known, JOIN_KEY].tolist()
        return frame.loc[known].reset_index(drop=True), unknown

    def _read(self, ids: list[int]) -> pd.DataFrame:
        """One row per id, in order: the online store's key lookup."""
        try:
            return self.store.get_online_features(
                features=self.refs, entity_rows=[{JOIN_KEY: i} for i in ids]
            ).to_df()
        except Exception as error:
            raise Unavailable(f"online feature store unavailable: {error}") from error


class SnapshotFeatures(OnlineFeatures):
    """The same vectors as :class:`OnlineFeatures`, read from the offline store at the snapshot the
    online store was loaded from (``features.materialize.latest_snapshot``).

    For batch scoring: one point-in-time join per chunk of customers instead of a key lookup per
    customer, so a million customers take minutes instead of most of an hour. Feast applies the
    same TTL rule as materialisation, so both sources give the same values.
    """

    def __init__(self, names: list[str]) -> None:
        super().__init__(names)
        from features.materialize import latest_snapshot

        try:
            self.snapshot = pd.Timestamp(latest_snapshot())
        except Exception as error:
            raise Unavailable(f"feature snapshot unavailable: {error}") from error

    def _read(self, ids: list[int]) -> pd.DataFrame:
        """One row per id, in order: a point-in-time join at the snapshot."""
        entities = pd.DataFrame({JOIN_KEY: ids, "event_timestamp": self.snapshot})
        try:
            joined = self.store.get_historical_features(
                entity_df=entities, features=self.refs, full_feature_names=False
            ).to_df()
        except Exception as error:
            raise Unavailable(f"offline feature store unavailable: {error}") from error
        features = joined.drop(columns="event_timestamp").drop_duplicates(JOIN_KEY)
        return pd.DataFrame({JOIN_KEY: ids}).merge(features, how="left")
