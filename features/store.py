"""The Feast ``FeatureStore``, configured from :mod:`crmscore.settings` at call time.

The repository configuration is built in code rather than read from a checked-in
``feature_store.yaml``: every path lives under ``settings.features_dir`` (never in git) and the
online store is chosen by ``settings.features.online_store``. :func:`features.build.apply` also
writes the equivalent ``feature_store.yaml`` next to the registry, so the ``feast`` CLI
(``feast -c data/features feature-views list``, ``feast ui``) works on the same repository.

Layout under ``features_dir``::

    tables/<view>.parquet   monthly snapshot feature tables (the offline store reads these)
    registry.db             Feast file registry
    online.db               SQLite online store (when selected)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmscore.settings import get_settings

if TYPE_CHECKING:
    from feast import FeatureStore


def tables_dir() -> Path:
    """Where the snapshot feature tables are written and read."""
    return get_settings().features_dir / "tables"


def repo_config_dict() -> dict[str, Any]:
    """The Feast repository configuration for the current settings (``feature_store.yaml`` data)."""
    from features.offline_store import offline_store_config

    settings = get_settings()
    section, root = settings.features, settings.features_dir
    if section.online_store == "redis":
        online: dict[str, Any] = {
            "type": "redis",
            "connection_string": section.redis_connection_string,
        }
    else:
        online = {"type": "sqlite", "path": str(root / "online.db")}
    return {
        "project": section.project,
        "provider": "local",
        # cache_ttl 0 = read the registry once per store object; apply() refreshes it explicitly.
        "registry": {
            "registry_type": "file",
            "path": str(root / "registry.db"),
            "cache_ttl_seconds": 0,
        },
        "offline_store": offline_store_config(),
        "online_store": online,
        "entity_key_serialization_version": 3,
        # Only each customer's latest row is loaded, in bounded batches.
        "materialization": {
            "pull_latest_features": True,
            "online_write_batch_size": section.online_write_batch_size,
        },
    }


def get_store() -> FeatureStore:
    """The feature store for the current settings (cached per configuration, so cheap to call).

    Settings are read on every call: tests and tools may point ``CRMSCORE_DATA_DIR`` elsewhere and
    call ``get_settings.cache_clear()``; the next call returns a store for the new location.
    """
    import json

    return _store(json.dumps(repo_config_dict(), sort_keys=True))


@lru_cache(maxsize=8)
def _store(config_json: str) -> FeatureStore:
    import json

    from feast import FeatureStore, RepoConfig

    settings = get_settings()
    settings.features_dir.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(repo_path=settings.features_dir, **json.loads(config_json))
    if settings.features.offline_store == "duckdb":
        cap_offline_duckdb()
    return FeatureStore(config=config)


def cap_offline_duckdb() -> None:
    """Give the DuckDB behind Feast's offline store the build's memory cap.

    Feast's DuckDB store runs its point-in-time joins on ibis's process-wide DuckDB connection,
    whose own default is 80 % of the RAM: at 1M customers a training set's joins alone could take
    most of the machine, where the feature build and the labels keep to
    ``features.duckdb_memory_limit`` and spill beyond it.
    """
    import ibis

    features = get_settings().features
    backend = ibis.get_backend()
    backend.raw_sql(f"SET memory_limit = '{features.duckdb_memory()}'")
    if features.duckdb_threads:
        backend.raw_sql(f"SET threads = {int(features.duckdb_threads)}")
