"""Benchmark: the scoring server over HTTP against the engines it is built on, in the same run.

The floor is what no serving code can beat, measured on this machine in this run:

* **HTTP floor**: ``GET /livez`` on the same server (uvicorn, BentoML's middlewares, the client);
* **engine floor of /score**: the online store's raw read of the same customer (the Feast
  provider's ``online_read``, once per feature view; on Redis, which reads asynchronously, also
  every view's ``online_read_async`` gathered on an event loop, as the server reads one customer,
  and the faster of the two at p50 is the floor) + ``Booster.predict`` of the three champions
  on ready float matrices (1 row churn, 1 row credit risk, 6 rows cross-sell);
* **engine floor of /explain** (credit risk): the same read + the booster's ``pred_contrib`` and
  raw score on its ready row.

Each latency sample round sends one request of every kind and times every floor once, in turn,
so all of them see the same machine load. A figure's ratio is the endpoint's percentile over
(HTTP floor + engine floor) at the same percentile: what the serving code adds, as a multiple.

Every HTTP figure is taken twice in each round: with httpx (what a Python service would use) and
with a lean client, one keep-alive socket sending each request in one write and reading the
answer by its ``Content-Length``. httpx itself costs 0.5-1.0 ms of every request, which hides
how fast the server is. Each client's ratios are taken over its own ``/livez``. Measured so far,
the two clients' ratios agree within about 0.1x (README).

Batches: ``POST /score`` with 100 and 1,000 ids (sequential requests), in customers/s, against the
store's reader alone on the same ids. And ``crmscore score``'s path over the whole book (offline
snapshot), customers/s, against its engines on the same chunks: Feast's point-in-time join and
``Booster.predict`` on the ready matrices.

Every configuration: online store SQLite and/or Redis (``--stores``), 1 and/or 2 workers
(``--workers``). The machine's load average is printed with each: on a shared machine the
absolute figures move with it, the ratios much less.

    .venv/bin/python bench/bench_serving.py --stack /tmp/bench-20k --customers 20000
    .venv/bin/python bench/bench_serving.py --prepare 2000        # a throw-away stack
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-admin-key"
PERCENTILES = (50, 99, 99.9)
#: Suffix of the lean client's figures (see the module docstring).
LEAN = "_lean"


def use_stack(root: Path) -> None:
    """Point the settings at the stack under ``root``."""
    os.environ["CRMSCORE_DATA_DIR"] = str(root / "data")
    os.environ["CRMSCORE_TRAINING__TRACKING_URI"] = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    from crmscore.settings import get_settings

    get_settings.cache_clear()


def prepare_stack(root: Path, customers: int) -> None:
    """Generate a bank, build + materialise features, train the three champions under ``root``."""
    use_stack(root)
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


def start_server(log: Path, workers: int = 1) -> tuple[subprocess.Popen, str]:
    """``bentoml serve`` with ``workers`` worker processes on a free port, once /readyz is 200."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "CRMSCORE_SERVING__API_KEYS": json.dumps({KEY: "admin"}),
        "CRMSCORE_SERVING__WORKERS": str(workers),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:CrmScore", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(1500):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    stop_server(process)
    raise RuntimeError(f"server did not become ready; see {log}")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@contextmanager
def redis_store(folder: Path) -> Iterator[None]:
    """A throw-away redis-server on loopback, selected as the online store and loaded with the
    latest snapshot (apt-installed when missing and allowed)."""
    if not shutil.which("redis-server") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq",
                                                         "redis-server"]):  # fmt: skip
            subprocess.run(command, check=False, capture_output=True, env=env)
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(folder)]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    names = ("CRMSCORE_FEATURES__ONLINE_STORE", "CRMSCORE_FEATURES__REDIS_CONNECTION_STRING")
    saved = {name: os.environ.get(name) for name in names}
    try:
        time.sleep(0.5)
        os.environ["CRMSCORE_FEATURES__ONLINE_STORE"] = "redis"
        os.environ["CRMSCORE_FEATURES__REDIS_CONNECTION_STRING"] = f"127.0.0.1:{port}"
        from crmscore.settings import get_settings
        from features.build import apply
        from features.materialize import materialize

        get_settings.cache_clear()
        started = time.perf_counter()
        apply()
        materialize()
        print(f"  materialised into Redis in {time.perf_counter() - started:.0f}s")
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        from crmscore.settings import get_settings

        get_settings.cache_clear()
        server.terminate()
        server.wait(timeout=10)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


#: The event loop of the floors' async reads, one for the whole run: Feast's Redis store keeps
#: its async client, bound to the loop it first ran on, for as long as the store lives.
READ_LOOP = asyncio.new_event_loop()


class Floors:
    """The engines behind the endpoints, called in-process on the configured online store."""

    def __init__(self) -> None:
        from features.online import OnlineReader
        from features.store import get_store
        from serving.catalogue import cross_sell_products
        from serving.champions import load_champions
        from serving.feature_source import rule_features

        self.champions = load_champions()
        store = get_store()
        self.reader = OnlineReader(store, [*self.champions.feature_names(), *rule_features()])
        self.provider, self.config = store.provider, store.config
        rows, _ = self.reader.read([1])
        compiled = self.champions.compiled
        self.matrices = [
            (model.booster, model.matrix(rows, cross_sell_products() if model.key else None))
            for model in compiled.values()
        ]
        credit = compiled["credit_risk"]
        self.credit = (credit.booster, credit.matrix(rows))
        # The floor without this process's own garbage collections over everything it imported
        # (the server freezes its heap the same way: serving.service.settle_heap).
        gc.collect()
        gc.freeze()
        atexit.register(gc.unfreeze)  # a quiet exit (see serving.service.settle_heap)

    def read(self, ids: list[int], together: bool = False) -> None:
        """The online store's raw read: the provider's ``online_read`` once per feature view;
        ``together`` on a store that reads asynchronously (Redis), every view's
        ``online_read_async`` awaited at once, as the server reads for its inline requests (on
        an event loop of its own here: ``run_until_complete`` adds a few tens of µs)."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        keys = [EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=i)])
                for i in ids]  # fmt: skip
        # A copy of each list, as OnlineReader passes: Feast's Redis store appends its timestamp
        # field to the list it is given, so the same list would grow by one field per call.
        if together and self.reader.concurrent:

            async def reads() -> None:  # gathered inside the loop: its futures are the loop's
                await asyncio.gather(
                    *(
                        self.provider.online_read_async(self.config, view, keys, list(wanted))
                        for view, wanted, _, _ in self.reader.plan
                    )
                )

            READ_LOOP.run_until_complete(reads())
            return
        for view, wanted, _, _ in self.reader.plan:
            self.provider.online_read(
                config=self.config, table=view, entity_keys=keys, requested_features=list(wanted)
            )

    def score(self, customer: int, together: bool = False) -> None:
        self.read([customer], together)
        for booster, matrix in self.matrices:
            booster.predict(matrix, num_threads=1)

    def explain(self, customer: int, together: bool = False) -> None:
        self.read([customer], together)
        booster, matrix = self.credit
        booster.predict(matrix, pred_contrib=True, num_threads=1)
        booster.predict(matrix, raw_score=True, num_threads=1)


class LeanClient:
    """HTTP/1.1 on one keep-alive socket, no HTTP library: each request goes out in one write
    and each answer is read by its ``Content-Length`` (every answer of the server has one)."""

    def __init__(self, url: str, key: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.head = f"Host: {host}\r\nX-API-Key: {key}\r\n"
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def request(self, method: str, path: str, body: dict | None = None) -> int:
        """Send one request and read its whole answer; returns the status code."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\n{self.head}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + payload)
        while b"\r\n\r\n" not in self.pending:
            self.pending += self._receive()
        header, _, rest = self.pending.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        sizes = [v for k, _, v in (line.partition(":") for line in lines[1:])
                 if k.strip().lower() == "content-length"]  # fmt: skip
        if not sizes:
            raise RuntimeError(f"{path}: an answer without Content-Length: {lines[0]}")
        while len(rest) < int(sizes[0]):
            rest += self._receive()
        self.pending = rest[int(sizes[0]) :]
        return int(lines[0].split(" ")[1])

    def _receive(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("the server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def latencies(url: str, floors: Floors, ids: list[int], rounds: int) -> dict[str, list[float]]:
    """``rounds`` interleaved samples of every request kind and every floor (seconds)."""
    import httpx

    rng = random.Random(0)
    with (
        httpx.Client(headers={"X-API-Key": KEY}, timeout=60) as client,
        closing(LeanClient(url, KEY)) as lean,
    ):

        def ok(response) -> None:
            if response.status_code != 200:
                raise RuntimeError(
                    f"{response.url} answered {response.status_code}: {response.text}"
                )

        def lean_ok(method: str, path: str, body: dict | None = None) -> None:
            if (status := lean.request(method, path, body)) != 200:
                raise RuntimeError(f"{path} answered {status} to the lean client")

        probes = {
            "livez": lambda c: ok(client.get(f"{url}/livez")),
            "score": lambda c: ok(client.post(f"{url}/score", json={"customer_ids": [c]})),
            "explain": lambda c: ok(
                client.post(f"{url}/explain", json={"customer_id": c, "model": "credit_risk"})
            ),
            "floor_score": floors.score,
            "floor_explain": floors.explain,
            # the gathered read too, where the store reads asynchronously (see measure)
            **(
                {
                    "floor_score_gathered": lambda c: floors.score(c, together=True),
                    "floor_explain_gathered": lambda c: floors.explain(c, together=True),
                }
                if floors.reader.concurrent
                else {}
            ),
            f"livez{LEAN}": lambda c: lean_ok("GET", "/livez"),
            f"score{LEAN}": lambda c: lean_ok("POST", "/score", {"customer_ids": [c]}),
            f"explain{LEAN}": lambda c: lean_ok(
                "POST", "/explain", {"customer_id": c, "model": "credit_risk"}
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in probes}
        for warm in range(50):
            for probe in probes.values():
                probe(ids[warm % len(ids)])
        for _ in range(rounds):
            customer = rng.choice(ids)
            floors.read([customer])  # untimed: every probe finds the customer in the page cache
            for name, probe in probes.items():
                samples[name].append(timed(lambda p=probe, c=customer: p(c)))
    return samples


def batches(url: str, floors: Floors, ids: list[int], size: int, requests: int) -> dict:
    """Customers/s of ``POST /score`` with ``size`` ids per request, and of the store reader."""
    import httpx

    rng = random.Random(size)
    http = store = 0.0
    with httpx.Client(headers={"X-API-Key": KEY}, timeout=300) as client:
        for _ in range(requests):
            chosen = rng.sample(ids, size)
            # An untimed read first, as in `latencies`: both the endpoint and the floor then find
            # these customers in the page cache. Otherwise the endpoint, reading first, paid every
            # cold read (119 customers/s against the floor's 1,187/s right after a CI run).
            floors.read(chosen)
            started = time.perf_counter()
            response = client.post(f"{url}/score", json={"customer_ids": chosen})
            http += time.perf_counter() - started
            if response.status_code != 200 or len(response.json()["results"]) != size:
                raise RuntimeError(f"/score x{size} answered {response.status_code}")
            store += timed(lambda c=chosen: floors.read(c))
    total = size * requests
    return {"http_customers_per_s": total / http, "store_customers_per_s": total / store}


def whole_book(floors: Floors, ids: list[int], rounds: int) -> dict[str, float]:
    """Customers/s of ``crmscore score``'s path (offline snapshot chunks, the same scoring), and of
    its engines on the same chunks, timed apart: Feast's point-in-time join into Arrow, and
    ``Booster.predict`` of the three champions on the chunk's ready matrices. The two alternate
    for ``rounds`` rounds (a demo bank's book takes seconds); the medians are reported."""
    import statistics

    from crmscore.settings import get_settings
    from serving.batch import score_chunks
    from serving.feature_source import SnapshotFeatures

    settings = get_settings().serving
    source = SnapshotFeatures(floors.champions.feature_names())
    size = settings.snapshot_chunk
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    path, engines = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in score_chunks(floors.champions, source, ids, settings, size):
            pass
        path.append(time.perf_counter() - started)
        engines.append(sum(book_engines(floors, source, chunk) for chunk in chunks))
    return {
        "customers_per_s": len(ids) / statistics.median(path),
        "engines_customers_per_s": len(ids) / statistics.median(engines),
    }


def book_engines(floors: Floors, source, chunk: list[int]) -> float:
    """Seconds of the engines for one chunk of the book: Feast's join, then the boosters."""
    import pandas as pd

    from features.online import FeatureRows
    from features.training_set import point_in_time
    from serving.catalogue import cross_sell_products
    from training.compiled_model import prediction_threads

    entities = pd.DataFrame({"customer_id": chunk, "event_timestamp": source.snapshot})
    started = time.perf_counter()
    table, at = point_in_time(entities, source.refs)
    seconds = time.perf_counter() - started
    rows = FeatureRows.from_arrow(table, at, chunk, source.layout)  # untimed: our code
    for model in floors.champions.compiled.values():
        matrix = model.matrix(rows, cross_sell_products() if model.key else None)
        started = time.perf_counter()
        model.booster.predict(matrix, num_threads=prediction_threads(len(matrix)))
        seconds += time.perf_counter() - started
    return seconds


def percentiles(seconds: list[float]) -> list[float]:
    return [float(np.percentile(np.asarray(seconds) * 1000, p)) for p in PERCENTILES]


def measure(folder: Path, workers: int, rounds: int, batch_requests: int) -> dict:
    """Every figure of one configuration (the settings' online store, ``workers`` workers)."""
    from crmscore.settings import get_settings
    from serving.batch import all_customer_ids

    ids = all_customer_ids(get_settings().raw_dir)
    floors = Floors()
    process, url = start_server(folder / f"server-{workers}.log", workers)
    try:
        before = load()
        samples = latencies(url, floors, ids, rounds)
        sizes = {size: batches(url, floors, ids, size, max(2, batch_requests * 100 // size))
                 for size in (100, 1000)}  # fmt: skip
        after = load()
    finally:
        stop_server(process)
    figures = {name: percentiles(values) for name, values in samples.items()}
    reads = {}
    for endpoint in ("score", "explain"):
        # The engine floor is the faster of the store's two reads at p50: one after another, or
        # gathered on an event loop (which pays for the loop's own turn in process).
        gathered = figures.get(f"floor_{endpoint}_gathered")
        reads[endpoint] = "sequential"
        if gathered is not None and gathered[0] < figures[f"floor_{endpoint}"][0]:
            # the floor is the gathered read; the other read keeps a line of its own
            figures[f"floor_{endpoint}_sequential"] = figures[f"floor_{endpoint}"]
            figures[f"floor_{endpoint}"] = figures.pop(f"floor_{endpoint}_gathered")
            reads[endpoint] = "gathered"
    ratios = {  # each client's endpoint over its own HTTP floor + the engine floor
        f"{endpoint}{client}": [
            e / (h + f)
            for e, h, f in zip(
                figures[f"{endpoint}{client}"],
                figures[f"livez{client}"],
                figures[f"floor_{endpoint}"],
                strict=True,
            )
        ]
        for endpoint in ("score", "explain")
        for client in ("", LEAN)
    }
    return {
        "workers": workers,
        "store": get_settings().features.online_store,
        "customers": len(ids),
        "rounds": rounds,
        "load_before": before,
        "load_after": after,
        "latency_ms": figures,
        "ratio": ratios,
        "floor_reads": reads,
        "batches": sizes,
    }


def report(result: dict) -> None:
    lat, ratio = result["latency_ms"], result["ratio"]
    print(
        f"\n{result['store']} online store, {result['workers']} worker(s), "
        f"{result['customers']:,} customers, {result['rounds']} rounds; "
        f"load {result['load_before']} -> {result['load_after']}"
    )
    header = "".join(f"{f'p{p}':>10}" for p in PERCENTILES)
    print(f"{'latency (ms)':<42}{header}")
    reads = result["floor_reads"]
    names = {
        "livez": "GET /livez (HTTP floor)",
        "floor_score": f"engines: read ({reads['score']}) + 3x predict",
        "floor_score_gathered": "  its read gathered on an event loop",
        "floor_score_sequential": "  its read one view after another",
        "score": "POST /score, 1 customer",
        "floor_explain": f"engines: read ({reads['explain']}) + contrib",
        "floor_explain_gathered": "  its read gathered on an event loop",
        "floor_explain_sequential": "  its read one view after another",
        "explain": "POST /explain (credit_risk)",
        f"livez{LEAN}": "lean client: GET /livez (HTTP floor)",
        f"score{LEAN}": "lean client: POST /score, 1 customer",
        f"explain{LEAN}": "lean client: POST /explain",
    }
    for key, label in names.items():
        if key not in lat:
            continue
        print(f"{label:<42}" + "".join(f"{v:>10.2f}" for v in lat[key]))
        if key in ratio:
            line = "".join(f"{v:>9.2f}x" for v in ratio[key])
            print(f"{'  / (HTTP floor + engine floor)':<42}{line}")
    for size, b in result["batches"].items():
        print(
            f"POST /score x{size:<5} {b['http_customers_per_s']:>9,.0f} customers/s;"
            f" store reader {b['store_customers_per_s']:>9,.0f}/s"
            f" ({b['http_customers_per_s'] / b['store_customers_per_s']:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", type=Path, help="stack folder (built there when empty)")
    where.add_argument("--prepare", type=int, metavar="CUSTOMERS", help="a throw-away stack")
    parser.add_argument("--customers", type=int, default=20_000, help="bank size for --stack")
    parser.add_argument(
        "--stores",
        default="sqlite,redis",
        help="online stores to measure ('': none, only the whole book's path)",
    )
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--rounds", type=int, default=2000, help="latency samples per figure")
    parser.add_argument("--batches", type=int, default=30, help="100-id requests per batch size")
    parser.add_argument("--book-rounds", type=int, default=7, help="whole-book passes (median)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serving.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crmscore-bench-") as tmp:
        tmp = Path(tmp)
        root = args.stack or tmp
        if args.prepare or not (root / "mlruns" / "mlflow.db").exists():
            customers = args.prepare or args.customers
            started = time.perf_counter()
            prepare_stack(root, customers)
            print(f"prepared {customers:,} customers in {time.perf_counter() - started:.0f}s")
        use_stack(root)
        results = []
        for store in [s for s in args.stores.split(",") if s]:
            with redis_store(tmp) if store == "redis" else nullcontext():
                for workers in (int(w) for w in args.workers.split(",")):
                    results.append(measure(tmp, workers, args.rounds, args.batches))
                    report(results[-1])
        from crmscore.settings import get_settings
        from serving.batch import all_customer_ids

        ids = all_customer_ids(get_settings().raw_dir)
        book = whole_book(Floors(), ids, args.book_rounds)
        print(
            f"\ncrmscore score path (offline snapshot, whole book): "
            f"{book['customers_per_s']:,.0f} customers/s; engines (Feast's join + "
            f"Booster.predict) {book['engines_customers_per_s']:,.0f}/s "
            f"({book['engines_customers_per_s'] / book['customers_per_s']:.2f}x)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"configurations": results, "whole_book": book}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
