"""Load test: sustained ``POST /score`` traffic from a separate process (wrk) on loopback.

wrk keeps a fixed number of connections busy (closed loop: each sends its next request when the
previous answer arrives) for a fixed time, and reports throughput, latency percentiles and errors
(socket errors, timeouts and any non-2xx answer). The run:

1. baseline: ``GET /livez`` at the highest concurrency: what the HTTP stack alone sustains, so the
   /score figures can be read as a ratio on any machine;
2. a sweep of ``POST /score`` (``--batch`` random known customers per request, default 1) over
   ``--concurrency`` levels, ``--step`` seconds each;
3. the sustainable rate: the highest-throughput level with zero errors and p99 within ``--slo-ms``
   (if none meets the budget: the zero-error level with the lowest p99, flagged), held for
   ``--duration`` seconds. Its figures are the ones the README quotes.

The machine's load average is printed with the figures: on a shared machine every number moves
with it, the ratio to the /livez baseline much less.

Requests go only to 127.0.0.1, for a bounded time. It starts its own server (``--workers``
worker processes) on a stack folder (``--stack``, as bench_serving.py builds it), a temporary
stack (``--prepare N`` customers) or the configured data and registry, or uses ``--url`` and
``--key``.

    .venv/bin/python bench/bench_load.py --stack /tmp/bench-20k --workers 1
    .venv/bin/python bench/bench_load.py --stack /tmp/bench-20k --workers 2 --batch 100
    .venv/bin/python bench/bench_load.py --url http://127.0.0.1:3000 --key demo-marketing

wrk comes from Debian (``apt-get install wrk``); the script installs it when it runs as root.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import KEY, prepare_stack, start_server, stop_server, use_stack  # noqa: E402

#: wrk's Lua side: POST /score with a random known id; print the figures as one JSON line.
LUA = """
local ids = {%(ids)s}
wrk.method = "%(method)s"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "%(key)s"
request = function()
  if wrk.method == "GET" then return wrk.format(nil, "%(path)s") end
  local chosen = {}
  for i = 1, %(batch)d do chosen[i] = ids[math.random(#ids)] end
  return wrk.format(nil, "%(path)s", nil, '{"customer_ids": [' .. table.concat(chosen, ",") .. ']}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %%d, "seconds": %%.3f, "socket_errors": %%d, "timeouts": %%d, '
    .. '"non_2xx": %%d, "p50_ms": %%.2f, "p90_ms": %%.2f, "p99_ms": %%.2f, "max_ms": %%.2f}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write, e.timeout, e.status,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3))
end
"""


def ensure_wrk() -> str:
    """Path of wrk, installing Debian's package when missing and allowed to."""
    if not shutil.which("wrk") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True, env=env
        )
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed: apt-get install wrk (Debian/Ubuntu)")
    return found


def run_wrk(wrk: str, url: str, script: Path, connections: int, seconds: int) -> dict:
    """One wrk run; its figures plus throughput and total errors."""
    command = [
        wrk,
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "--script",
        str(script),
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    figures = json.loads(line[4:])
    figures["connections"] = connections
    figures["per_s"] = figures["requests"] / figures["seconds"]
    figures["errors"] = figures["socket_errors"] + figures["timeouts"] + figures["non_2xx"]
    return figures


def write_script(
    folder: Path, method: str, path: str, key: str, ids: list[int], batch: int = 1
) -> Path:
    script = folder / f"{method.lower()}{path.replace('/', '_')}.lua"
    values = {"ids": ",".join(map(str, ids)), "method": method, "path": path, "key": key}
    script.write_text(LUA % {**values, "batch": batch})
    return script


def loopback(url: str) -> str:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"--url {url}: this load test only targets loopback (127.0.0.1)")
    return url.rstrip("/")


def row(name: str, f: dict) -> str:
    return (
        f"{name:<30}{f['connections']:>6}{f['per_s']:>10,.1f}{f['p50_ms']:>9.1f}"
        f"{f['p99_ms']:>9.1f}{f['max_ms']:>9.1f}{f['errors']:>8}{f['requests']:>9,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=int, metavar="CUSTOMERS", help="build a temporary stack")
    parser.add_argument("--stack", type=Path, help="a stack folder bench_serving.py prepared")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--url", help="use this running server (loopback only) instead")
    parser.add_argument("--key", default=KEY, help="API key for --url (a role that may /score)")
    parser.add_argument("--batch", type=int, default=1, help="customers per /score request")
    parser.add_argument("--concurrency", default="1,2,4,8,16", help="connections per sweep step")
    parser.add_argument("--step", type=int, default=10, help="seconds per sweep step")
    parser.add_argument("--duration", type=int, default=30, help="seconds of the sustained run")
    parser.add_argument("--slo-ms", type=float, default=100.0, help="p99 budget for 'sustainable'")
    parser.add_argument("--out", type=Path, default=Path("bench/results/load.json"))
    args = parser.parse_args()
    levels = sorted({int(c) for c in args.concurrency.split(",")})
    wrk = ensure_wrk()

    with tempfile.TemporaryDirectory(prefix="crmscore-load-") as tmp:
        tmp = Path(tmp)
        process = None
        if args.url:
            url, key = loopback(args.url), args.key
        else:
            if args.prepare:
                started = time.perf_counter()
                prepare_stack(tmp, args.prepare)
                print(
                    f"prepared {args.prepare:,} customers in {time.perf_counter() - started:.0f}s"
                )
            elif args.stack:
                use_stack(args.stack)
            process, url = start_server(tmp / "server.log", args.workers)
            key = KEY
        try:
            from crmscore.settings import get_settings
            from serving.batch import all_customer_ids

            ids = all_customer_ids(get_settings().raw_dir)
            ids = random.Random(0).sample(ids, min(len(ids), 5000))
            score = write_script(tmp, "POST", "/score", key, ids, args.batch)
            livez = write_script(tmp, "GET", "/livez", key, ids)
            run_wrk(wrk, url, score, 2, 3)  # warm-up: caches, connection pools

            load_before = os.getloadavg()
            load = "/".join(f"{x:.1f}" for x in load_before)
            print(
                f"POST /score, {args.batch} customer(s) per request, {len(ids):,} distinct ids, "
                f"{args.workers} worker(s); "
                f"sweep {args.step}s per level, sustained {args.duration}s; "
                f"{os.cpu_count()} CPUs, load average {load} before the run"
            )
            header = f"{'run':<30}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
            print(header + f"{'max ms':>9}{'errors':>8}{'requests':>9}")
            baseline = run_wrk(wrk, url, livez, levels[-1], args.step)
            print(row("GET /livez (baseline)", baseline))
            sweep = []
            for connections in levels:
                figures = run_wrk(wrk, url, score, connections, args.step)
                sweep.append(figures)
                print(row("POST /score sweep", figures))
            clean = [f for f in sweep if f["errors"] == 0]
            if not clean:
                sys.exit("every level had errors: no sustainable rate")
            fine = [f for f in clean if f["p99_ms"] <= args.slo_ms]
            if fine:
                chosen = max(fine, key=lambda f: f["per_s"])
            else:
                chosen = min(clean, key=lambda f: f["p99_ms"])
                print(f"no level kept p99 <= {args.slo_ms:.0f} ms; holding the lowest-p99 level")
            sustained = run_wrk(wrk, url, score, chosen["connections"], args.duration)
            print(row(f"POST /score sustained {args.duration}s", sustained))
        finally:
            if process is not None:
                stop_server(process)

    verdict = "zero errors" if sustained["errors"] == 0 else f"{sustained['errors']} ERRORS"
    print(
        f"sustainable: {sustained['per_s']:,.0f} req/s at {chosen['connections']} connections, "
        f"p50 {sustained['p50_ms']:.1f} ms, p99 {sustained['p99_ms']:.1f} ms, {verdict}; "
        f"the /livez baseline answers {baseline['per_s'] / sustained['per_s']:,.0f}x as many "
        f"({baseline['per_s']:,.0f} req/s): the cost is the scoring, not HTTP"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figures = {
        "batch": args.batch,
        "workers": args.workers,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "chosen": chosen,
    }
    args.out.write_text(
        json.dumps(
            {
                **figures,
                "customers_sampled": len(ids),
                "slo_p99_ms": args.slo_ms,
                "baseline": baseline,
                "sweep": sweep,
                "sustained": sustained,
            },
            indent=2,
        )
        + "\n"
    )
    if sustained["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
