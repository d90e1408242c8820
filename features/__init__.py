"""The feature store: DuckDB SQL from raw history to monthly snapshot tables, served by Feast.

Public API (settings are read at call time, so ``CRMSCORE_DATA_DIR`` may change between calls):

- :func:`features.build.build_feature_tables` and :func:`features.build.apply` — compute the tables,
  then register entity, views and services (``crmscore features build``);
- :func:`features.materialize.materialize` — latest snapshot into the online store;
- :func:`features.training_set.get_training_set` — point-in-time training sets via Feast;
- :func:`features.online.get_online_features` — online vectors for serving;
- :mod:`features.catalog` — feature names per service, descriptions, categorical columns;
- :func:`features.store.get_store` — the configured ``feast.FeatureStore``.

One module per concept: :mod:`features.views` (one feature view group each: SQL + described
features), :mod:`features.staging` (shared month grid and aggregates), :mod:`features.definitions`
(Feast objects and which features each model may use).
"""
