"""Benchmark: the scoring server over HTTP against the same predictions made in-process.

Measures, on one prepared stack (features in the online store, champions in MLflow):

* p50/p99 latency of ``POST /score`` for 1 customer and ``POST /explain`` (churn) for 1 customer,
  each against the floor: the same feature read + prediction called in-process;
* throughput of ``POST /score`` with 100-customer batches under concurrent load from separate
  client processes, against one in-process loop doing the same batches;
* batch scoring throughput (customers/s) of every customer, as ``crmscore score`` does it.

The ratio HTTP / in-process is the cost of the server (HTTP, JSON, validation, auth, audit).

    .venv/bin/python bench/bench_serving.py --prepare 2000        # builds a temporary stack
    .venv/bin/python bench/bench_serving.py                        # uses the configured data/mlruns
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-admin-key"


def prepare_stack(root: Path, customers: int) -> None:
    """Generate a bank, build + materialise features, train the three champions under ``root``."""
    os.environ["CRMSCORE_DATA_DIR"] = str(root / "data")
    os.environ["CRMSCORE_TRAINING__TRACKING_URI"] = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    from crmscore.settings import get_settings

    get_settings.cache_clear()
    from crmscore.synthetic import BankConfig, generate_bank
    from features.build import apply, build_feature_tables
    from features.materialize import materialize
    from training.pipeline import train_model

    generate_bank(
        BankConfig(customers=customers, months=24, seed=11), root / "data", progress=False
    )
    build_feature_tables()
    apply()
    materialize()
    for model in ("churn", "cross_sell", "credit_risk"):
        train_model(model, lgbm_overrides={"n_estimators": 300})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:CrmScore", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "CRMSCORE_SERVING__API_KEYS": json.dumps({KEY: "admin"})},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"server did not become ready; see {log}")


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def _client(args: tuple[str, list[list[int]]]) -> int:
    """One load-generating process: send its batches one after another; return customers scored."""
    import httpx

    url, batches = args
    scored = 0
    with httpx.Client(headers={"X-API-Key": KEY}, timeout=120) as client:
        for batch in batches:
            response = client.post(f"{url}/score", json={"customer_ids": batch})
            if response.status_code != 200:  # a plain message: HTTPStatusError does not pickle
                raise RuntimeError(f"/score answered {response.status_code}: {response.text}")
            scored += len(response.json()["results"])
    return scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=int, metavar="CUSTOMERS", help="build a temporary stack")
    parser.add_argument("--requests", type=int, default=200, help="latency samples per endpoint")
    parser.add_argument("--batches", type=int, default=40, help="100-customer batches under load")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.prepare:
            started = time.perf_counter()
            prepare_stack(tmp, args.prepare)
            print(f"prepared {args.prepare:,} customers in {time.perf_counter() - started:.0f}s")
        import httpx

        from crmscore.settings import get_settings
        from serving.batch import all_customer_ids, score_customers
        from serving.champions import load_champions
        from serving.explain import explain_rows
        from serving.feature_source import OnlineFeatures, SnapshotFeatures
        from serving.scoring import score_frame

        settings = get_settings()
        champions = load_champions()
        source = OnlineFeatures(champions.feature_names())
        ids = all_customer_ids(settings.raw_dir)
        rng = random.Random(0)
        sample = [rng.choice(ids) for _ in range(args.requests + 1)]
        it = iter(sample)

        # In-process floors.
        def local_score():
            frame, _ = source.fetch([next(it)])
            score_frame(champions, frame, settings.serving)

        def local_explain():
            frame, _ = source.fetch([next(it)])
            explain_rows(champions.churn, frame, settings.serving.top_k)

        floor_score = timed(local_score, args.requests)
        it = iter(sample)
        floor_explain = timed(local_explain, args.requests)
        batches = [rng.sample(ids, 100) for _ in range(args.batches)]
        started = time.perf_counter()
        for batch in batches:
            frame, _ = source.fetch(batch)
            score_frame(champions, frame, settings.serving)
        floor_tput = 100 * len(batches) / (time.perf_counter() - started)
        started = time.perf_counter()
        snapshot = SnapshotFeatures(champions.feature_names())  # what `crmscore score` reads
        chunk = settings.serving.snapshot_chunk
        _, scores, _ = score_customers(champions, snapshot, ids, settings.serving, chunk)
        batch_s = time.perf_counter() - started

        # The real server.
        process, url = start_server(tmp / "server.log")
        try:
            client = httpx.Client(headers={"X-API-Key": KEY}, timeout=60)
            it = iter(sample)
            http_score = timed(
                lambda: client.post(f"{url}/score", json={"customer_ids": [next(it)]}),
                args.requests,
            )
            it = iter(sample)
            http_explain = timed(
                lambda: client.post(
                    f"{url}/explain", json={"customer_id": next(it), "model": "churn"}
                ),
                args.requests,
            )
            share = [batches[i :: args.clients] for i in range(args.clients)]
            context = multiprocessing.get_context("spawn")
            with context.Pool(args.clients) as pool:
                pool.map(_client, [(url, s[:1]) for s in share])  # warm connections
                started = time.perf_counter()
                scored = sum(pool.map(_client, [(url, s) for s in share]))
                http_tput = scored / (time.perf_counter() - started)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)

    s50, s99 = percentiles(http_score)
    fs50, fs99 = percentiles(floor_score)
    e50, e99 = percentiles(http_explain)
    fe50, fe99 = percentiles(floor_explain)
    figures = {
        "customers": len(ids),
        "score_1_p50_ms": s50,
        "score_1_p99_ms": s99,
        "score_1_floor_p50_ms": fs50,
        "score_1_floor_p99_ms": fs99,
        "explain_1_p50_ms": e50,
        "explain_1_p99_ms": e99,
        "explain_1_floor_p50_ms": fe50,
        "explain_1_floor_p99_ms": fe99,
        "score_100_http_customers_per_s": http_tput,
        "score_100_floor_customers_per_s": floor_tput,
        "clients": args.clients,
        "batch_customers_per_s": len(scores) / batch_s,
        "batch_seconds": batch_s,
    }
    print(f"{len(ids):,} customers; {args.requests} requests per latency figure")
    print(f"{'measure':<44}{'HTTP':>12}{'in-process':>12}{'ratio':>8}")
    rows = [
        ("/score 1 customer p50 (ms)", s50, fs50),
        ("/score 1 customer p99 (ms)", s99, fs99),
        ("/explain 1 customer p50 (ms)", e50, fe50),
        ("/explain 1 customer p99 (ms)", e99, fe99),
        (f"/score x100 customers/s ({args.clients} clients)", http_tput, floor_tput),
    ]
    for name, http, floor in rows:
        print(f"{name:<44}{http:>12,.1f}{floor:>12,.1f}{http / floor:>7.2f}x")
    print(f"{'batch scoring, all customers (customers/s)':<44}{'':>12}"
          f"{figures['batch_customers_per_s']:>12,.0f}")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
