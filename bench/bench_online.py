"""Benchmark: loading the online store and reading it, SQLite and Redis (default 100k customers).

On one built feature repository (``--data-dir``, or a bank generated and built here), in one run:

* materialise the latest snapshot with **Feast's own materialisation** (the baseline: a protobuf
  object per value, one SQLite statement or hash field per value) and with crmscore's
  ``features.materialize`` (:mod:`features.online_writer`: whole columns, the same bytes), into
  SQLite and into Redis (a ``redis-server`` started on loopback); seconds, customers/s, the
  SQLite file size and Redis' memory;
* online reads through ``features.online.get_online_features`` (Feast's read path) for 1 and for
  100 customers, p50 / p99 over ``--reads`` calls, on each store.

    .venv/bin/python bench/bench_online.py --customers 100000
    nice -n 19 .venv/bin/python bench/bench_online.py --data-dir DIR --skip-feast

``--skip-feast`` leaves out the baselines where they take too long (25-60 minutes at 1M);
``--tile K`` measures a book K times as big: the latest snapshot repeated with shifted ids.
Results go to ``bench/results/online-N.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SERVICE = "cross_sell"  # the widest service: every feature but one


def prepare(data_dir: Path | None, customers: int) -> Path:
    """A data folder with built and applied feature tables (generated here when not given)."""
    if data_dir is not None:
        return data_dir
    data_dir = RESULTS / f"online-bank-{customers}"
    if not (data_dir / "features" / "registry.db").exists():
        env = {**os.environ, "CRMSCORE_DATA_DIR": str(data_dir)}
        crmscore = Path(sys.executable).parent / "crmscore"
        for command in (
            ["generate", "--customers", str(customers), "--months", "24", "--no-progress"],
            ["features", "build", "--no-progress"],
        ):
            subprocess.run([crmscore, *command], env=env, check=True)
    return data_dir


def tile(source: Path, copies: int) -> Path:
    """A data folder whose feature tables hold the latest snapshot of ``source``'s tables
    ``copies`` times, with customer ids shifted per copy: a bigger book of the same shape (the
    load costs rows x features; older snapshots are never loaded), applied to its own registry."""
    import duckdb

    from crmscore.settings import get_settings
    from features.build import apply

    target = RESULTS / f"online-tiled-{source.name}-x{copies}"
    tables = target / "features" / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        for table in sorted((source / "features" / "tables").glob("*.parquet")):
            con.execute(
                f"COPY (SELECT * REPLACE (customer_id + copy * (SELECT max(customer_id) + 1 FROM "
                f"read_parquet('{table}')) AS customer_id) FROM read_parquet('{table}'), "
                f"range({copies}) AS copies(copy) WHERE event_timestamp = (SELECT "
                f"max(event_timestamp) FROM read_parquet('{table}')) ORDER BY customer_id) "
                f"TO '{tables / table.name}' (FORMAT parquet)"
            )
    os.environ["CRMSCORE_DATA_DIR"] = str(target)
    get_settings.cache_clear()
    apply()
    return target


def redis_server(directory: Path) -> tuple[subprocess.Popen, str]:
    """``redis-server`` on a free loopback port, persistence off."""
    import socket

    import redis

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return process, f"127.0.0.1:{port}"


def use(online: dict[str, str]) -> None:
    """Point the settings (and so Feast) at another online store."""
    from crmscore.settings import get_settings

    for name in ("CRMSCORE_FEATURES__ONLINE_STORE", "CRMSCORE_FEATURES__REDIS_CONNECTION_STRING"):
        os.environ.pop(name, None)
    os.environ.update(online)
    get_settings.cache_clear()


def feast_materialise(online: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of Feast's own ``FeatureStore.materialize`` of the latest snapshot
    into ``online`` (a Feast ``online_store`` section), its tables created first by ``apply``."""
    from feast import FeatureStore, RepoConfig

    from crmscore.settings import get_settings
    from features.definitions import entity, feature_services, feature_views
    from features.materialize import latest_snapshot
    from features.store import repo_config_dict

    config = {**repo_config_dict(), "online_store": online}
    store = FeatureStore(config=RepoConfig(repo_path=get_settings().features_dir, **config))
    views = feature_views()
    store.apply([entity(), *views, *feature_services(views)])
    snapshot = latest_snapshot()
    ttl = timedelta(days=get_settings().features.ttl_days)
    started, cpu = time.perf_counter(), time.process_time()
    store.materialize(start_date=snapshot - ttl, end_date=snapshot)
    return time.perf_counter() - started, time.process_time() - cpu


def materialise() -> tuple[float, float]:
    """Wall and CPU seconds (this process) of ``features.materialize.materialize`` into the
    configured store. CPU time is what a shared machine distorts least."""
    from features.build import apply
    from features.materialize import materialize

    apply()  # creates the online tables of the configured store
    started, cpu = time.perf_counter(), time.process_time()
    materialize()
    return time.perf_counter() - started, time.process_time() - cpu


def redis_cpu(client) -> float:
    """CPU seconds the Redis server has used so far."""
    info = client.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def read_latency(ids: np.ndarray, batch: int, reads: int) -> dict[str, float]:
    """p50 / p99 milliseconds of ``get_online_features`` for ``batch`` random customers."""
    from features.online import get_online_features

    rng = np.random.default_rng(batch)
    get_online_features(ids[:batch].tolist(), SERVICE)  # warm: registry, plans
    times = []
    for _ in range(reads):
        chosen = rng.choice(ids, size=batch, replace=False).tolist()
        started = time.perf_counter()
        get_online_features(chosen, SERVICE)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def measure_redis(ids: np.ndarray, args: argparse.Namespace, report, results: dict) -> None:
    """Feast's and crmscore's materialisation into a fresh loopback Redis, then reads."""
    import redis

    with tempfile.TemporaryDirectory() as redis_dir:
        process, connection = redis_server(Path(redis_dir))
        try:
            host, port = connection.split(":")
            client = redis.Redis(host=host, port=int(port))
            if not args.skip_feast:
                server_cpu = redis_cpu(client)
                seconds, cpu = feast_materialise({"type": "redis", "connection_string": connection})
                report(
                    "feast_redis_materialise",
                    seconds,
                    cpu_s=round(cpu, 1),
                    redis_cpu_s=round(redis_cpu(client) - server_cpu, 1),
                    bytes=client.info("memory")["used_memory"],
                )
                client.flushall()
            use(
                {
                    "CRMSCORE_FEATURES__ONLINE_STORE": "redis",
                    "CRMSCORE_FEATURES__REDIS_CONNECTION_STRING": connection,
                }
            )
            server_cpu = redis_cpu(client)
            seconds, cpu = materialise()
            report(
                "redis_materialise",
                seconds,
                cpu_s=round(cpu, 1),
                redis_cpu_s=round(redis_cpu(client) - server_cpu, 1),
                bytes=client.info("memory")["used_memory"],
            )
            results["redis_read_1"] = read_latency(ids, 1, args.reads)
            results["redis_read_100"] = read_latency(ids, 100, max(20, args.reads // 4))
        finally:
            process.terminate()
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, help="a data folder with built feature tables")
    parser.add_argument("--reads", type=int, default=200, help="online reads per measure")
    parser.add_argument("--skip-feast", action="store_true", help="no baseline runs")
    parser.add_argument("--stores", default="sqlite,redis", help="online stores to measure")
    parser.add_argument(
        "--tile", type=int, default=1, help="measure a book this many times the data folder's"
    )
    args = parser.parse_args()
    stores = args.stores.split(",")

    import pyarrow.parquet as pq

    data_dir = prepare(args.data_dir, args.customers)
    if args.tile > 1:
        data_dir = tile(data_dir, args.tile)
    os.environ["CRMSCORE_DATA_DIR"] = str(data_dir)
    features_dir = data_dir / "features"
    profile = pq.read_table(features_dir / "tables" / "profile.parquet", columns=["customer_id"])
    ids = np.unique(profile["customer_id"].to_numpy())
    customers = len(ids)
    load = os.getloadavg()
    results: dict[str, object] = {"customers": customers, "load_before": load}
    print(f"{customers:,} customers; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")

    def report(name: str, seconds: float, **extra: object) -> None:
        results[name] = {"seconds": seconds, "customers_per_s": customers / seconds, **extra}
        print(f"{name:<28} {seconds:9.1f} s  {customers / seconds:9,.0f} customers/s  {extra}")

    use({"CRMSCORE_FEATURES__ONLINE_STORE": "sqlite"})
    if "sqlite" in stores and not args.skip_feast:
        with tempfile.TemporaryDirectory(dir=features_dir) as scratch:
            stock = Path(scratch) / "feast-online.db"
            seconds, cpu = feast_materialise({"type": "sqlite", "path": str(stock)})
            size = stock.stat().st_size
            report("feast_sqlite_materialise", seconds, cpu_s=round(cpu, 1), bytes=size)
    if "sqlite" in stores:
        (features_dir / "online.db").unlink(missing_ok=True)
        seconds, cpu = materialise()
        size = (features_dir / "online.db").stat().st_size
        report("sqlite_materialise", seconds, cpu_s=round(cpu, 1), bytes=size)
        results["sqlite_read_1"] = read_latency(ids, 1, args.reads)
        results["sqlite_read_100"] = read_latency(ids, 100, max(20, args.reads // 4))

    if "redis" in stores:
        measure_redis(ids, args, report, results)
    use({"CRMSCORE_FEATURES__ONLINE_STORE": "sqlite"})

    for store in stores:
        one, hundred = results[f"{store}_read_1"], results[f"{store}_read_100"]
        print(f"{store:<7} online read p50/p99: 1 customer {one['p50_ms']:.1f} / "
              f"{one['p99_ms']:.1f} ms, 100 customers {hundred['p50_ms']:.0f} / "
              f"{hundred['p99_ms']:.0f} ms")  # fmt: skip
    for store in stores if not args.skip_feast else ():
        ratio = (
            results[f"feast_{store}_materialise"]["seconds"]
            / results[f"{store}_materialise"]["seconds"]
        )
        print(f"{store} materialisation: {ratio:.1f}x faster than Feast's own")
    results["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"online-{customers}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
