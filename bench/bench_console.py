"""Benchmark: how fast each console page answers, against the server's cheapest answer.

On one prepared stack (the demo bank by default), starts ``bentoml serve``, waits until the
console's customer book is built, then times every page over HTTP (an admin key in the
``X-API-Key`` header, as a logged-in browser's cookie would be checked): p50/p99 of each page
against the baseline measured in the same run, ``GET /livez`` (what any request costs the
server). The issue's budget is 300 ms per page on the demo bank.

    .venv/bin/python bench/bench_console.py --prepare 20000     # builds a temporary demo-size stack
    .venv/bin/python bench/bench_console.py --stack DIR         # a stack prepared before
    .venv/bin/python bench/bench_console.py                     # uses the configured data/mlruns
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import KEY, prepare_stack, start_server, timed, use_stack  # noqa: E402


def p50_p99(fn, requests: int) -> tuple[float, float]:
    """Milliseconds at the 50th and 99th percentiles of ``requests`` calls (after one warm-up)."""
    import numpy as np

    fn()
    ms = np.asarray([timed(fn) for _ in range(requests)]) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def pages(customers: list[int], manager: int) -> dict[str, str]:
    """Page name -> path, one customer and one manager picked from the book."""
    query = "submitted=1&product=credit_card&top=500&exclude_holders=on&exclude_churned=on"
    return {
        "home": "/console/",
        "campaign builder (form)": "/console/campaigns",
        "campaign preview, top 500, page 1": f"/console/campaigns?{query}&require_consent=on",
        "customer view": f"/console/customers/{customers[0]}",
        "customer view (another)": f"/console/customers/{customers[1]}",
        "worklist": f"/console/worklist?manager_id={manager}",
        "portfolio by segment": "/console/portfolio?by=segment",
        "portfolio by manager": "/console/portfolio?by=manager",
        "models": "/console/models",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=int, metavar="CUSTOMERS", help="build a temporary stack")
    parser.add_argument("--stack", type=Path, help="a stack --prepare built before")
    parser.add_argument("--requests", type=int, default=50, help="samples per page")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    import httpx
    import pandas as pd

    if args.prepare:
        root = Path(tempfile.mkdtemp(prefix="bench-console-"))
        prepare_stack(root, args.prepare)
    elif args.stack:
        use_stack(args.stack)
    from crmscore.settings import get_settings

    get_settings.cache_clear()
    raw = get_settings().raw_dir
    book = pd.read_parquet(raw / "customers")
    manager = int(book["manager_id"].dropna().value_counts().index[0])
    picked = book["customer_id"].sample(2, random_state=1).tolist()
    log = Path(tempfile.mkdtemp(prefix="bench-console-log-")) / "server.log"
    process, url = start_server(log)
    try:
        started = time.perf_counter()
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=300) as client:
            while client.get("/console/portfolio").status_code == 503:
                time.sleep(1)
            print(f"customer book ready {time.perf_counter() - started:.1f} s after the first page")
            baseline = p50_p99(lambda: client.get("/livez"), args.requests)
            results = {"GET /livez (baseline)": baseline}
            for name, path in pages(picked, manager).items():

                def get(path=path):
                    response = client.get(path)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path} answered {response.status_code}")

                results[name] = p50_p99(get, args.requests)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    load = os.getloadavg()[0]
    print(f"\n{len(book):,} customers, {args.requests} requests per page, load average {load:.1f}")
    print(f"{'page':<36} {'p50 ms':>8} {'p99 ms':>8} {'p50 / baseline':>15}")
    for name, (p50, p99) in results.items():
        print(f"{name:<36} {p50:>8.1f} {p99:>8.1f} {p50 / baseline[0]:>14.1f}x")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        figures = {k: {"p50_ms": v[0], "p99_ms": v[1]} for k, v in results.items()}
        args.out.write_text(json.dumps({"customers": len(book), "load": load, **figures}, indent=2))


if __name__ == "__main__":
    main()
