"""``generate_bank``: run the simulation and write the raw tables and the oracle."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crmscore import schema
from crmscore.allocator import keep_freed_memory
from crmscore.dataset import ARROW_TYPES, arrow_schema, dictionary_columns
from crmscore.progress import progress_bar
from crmscore.synthetic import vocabulary
from crmscore.synthetic.accounts import IdSpace
from crmscore.synthetic.config import BankConfig
from crmscore.synthetic.contacts import Contacts, locate
from crmscore.synthetic.population import Traits, make_customers
from crmscore.synthetic.simulation import BankSimulation
from crmscore.synthetic.vocabulary import Translation

ORACLE_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("snapshot", pa.date32()),
        ("outcome", pa.string()),
        ("product", pa.string()),
        ("probability", pa.float64()),
    ]
)
EVENTS_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("outcome", pa.string()),
        ("product", pa.string()),
        ("event_date", pa.date32()),
    ]
)


@dataclass(frozen=True)
class BankSummary:
    """Row counts and outcome rates of a generated bank."""

    out: Path
    rows: dict[str, int]
    events: dict[str, int]

    def __str__(self) -> str:
        rows = ", ".join(f"{k}={v:,}" for k, v in self.rows.items())
        events = ", ".join(f"{k}={v:,}" for k, v in self.events.items())
        return f"wrote {self.out}/raw ({rows}) and {self.out}/oracle (events: {events})"


#: Customers simulated together. A larger bank is simulated in groups of this many, each from its
#: own random stream, in parallel processes: memory is bounded by what a group holds (a month of its
#: transactions), and the generator uses every core. The size is part of what a seed means (a bank
#: of up to this many customers is one group, the same as before groups existed); the number of
#: processes is not: any count writes the same tables.
GROUP_CUSTOMERS = 250_000


def generate_bank(
    cfg: BankConfig,
    out: Path,
    progress: bool = True,
    contacts: pd.DataFrame | None = None,
    workers: int | None = None,
    group_customers: int = GROUP_CUSTOMERS,
) -> BankSummary:
    """Simulate ``cfg`` and write ``out/raw/<table>/`` and ``out/oracle/``.

    ``contacts`` (:func:`crmscore.synthetic.contacts.read_contacts`) are campaign contacts to
    simulate: their effect starts at each campaign date, the months before are unchanged.
    ``workers`` processes simulate the groups of ``group_customers`` customers (None: every core
    this process may use). Both folders are replaced only once everything is written, so a crash
    leaves any previous bank intact.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    Translation(cfg.contract)  # fails early on a contract it cannot write
    groups = _groups(cfg, contacts, group_customers)
    workers = len(os.sched_getaffinity(0)) if workers is None else workers
    with tempfile.TemporaryDirectory(dir=out, prefix=".generate-") as tmp:
        tmp = Path(tmp)
        for folder in ("raw", "oracle/probabilities", "oracle/events"):
            (tmp / folder).mkdir(parents=True)
        months = len(groups) * (cfg.burn_in + cfg.months)
        with progress_bar("Simulating months", months, progress) as advance:
            if workers <= 1 or len(groups) == 1:
                counts = [_simulate(cfg, group, tmp, advance) for group in groups]
            else:
                counts = _simulate_in_processes(cfg, groups, tmp, workers, advance)
        return _finish(cfg, tmp, out, counts)


@dataclass(frozen=True)
class _Group:
    """A group of the bank's customers and everything its simulation starts from."""

    ids: IdSpace
    customers: pd.DataFrame
    traits: Traits
    rng: np.random.Generator
    contacts: Contacts | None


def _groups(cfg: BankConfig, contacts: pd.DataFrame | None, size: int) -> list[_Group]:
    """The whole bank's customers drawn at once, then cut into groups of ``size``: group 0 goes
    on with the customers' random stream, group ``k`` starts its own from ``(seed, k)``."""
    rng = np.random.default_rng(cfg.seed)
    customers, traits = make_customers(cfg, rng)
    located = None
    if contacts is not None:
        located = locate(contacts, customers["customer_id"].to_numpy(), cfg.month_start)
    starts = range(0, len(customers), size)
    return [
        _Group(
            ids=IdSpace(k, len(starts)),
            customers=customers.iloc[lo : lo + size].reset_index(drop=True),
            traits=traits.rows(lo, lo + size),
            rng=rng if k == 0 else np.random.default_rng([cfg.seed, k]),
            contacts=None if located is None else located.rows(lo, lo + size),
        )
        for k, lo in enumerate(starts)
    ]


def _simulate(
    cfg: BankConfig, group: _Group, tmp: Path, advance: Callable[[], None]
) -> tuple[Counter, Counter]:
    """Simulate one group month by month and write its parts; returns its row and event counts."""
    writers = _Writers(tmp, Translation(cfg.contract), group.ids)
    customers = group.customers
    sim = BankSimulation(cfg, customers, group.traits, group.rng, group.contacts, group.ids)
    for t in range(-cfg.burn_in, cfg.months):
        rows = sim.step(t)
        advance()
        if rows is None:
            continue
        for name in ("transactions", "interactions"):
            frame = getattr(rows, name)
            if not frame["ts"].is_monotonic_increasing:  # transactions come in time order
                frame = frame.sort_values(["ts"], kind="stable")
            writers.add(name, frame, sim.customer_ids, t)
        writers.add("credit_status", rows.credit_status, sim.customer_ids, t)
        writers.oracle(rows.oracle, rows.events, t)
    sim.settle_overdraft_limits()
    accounts = sim.book.table()
    # A customer joined no later than their first account opened (dates as datetimes: pandas
    # takes the minimum of Python dates one by one).
    first_open = pd.to_datetime(accounts["open_date"]).groupby(accounts["customer_id"]).min()
    customers["join_date"] = np.minimum(
        customers["join_date"].to_numpy(),
        first_open.dt.date.reindex(customers["customer_id"]).to_numpy(),
    )
    writers.table("customers", customers)
    writers.table("accounts", accounts)
    return writers.rows, writers.events


#: In a worker process: the queue its month ticks go to (set when the process starts).
_ticks = None


def _start_worker(ticks) -> None:
    global _ticks
    _ticks = ticks
    keep_freed_memory()  # the worker only simulates (see crmscore.allocator)


def _simulate_in_worker(cfg: BankConfig, group: _Group, tmp: Path) -> tuple[Counter, Counter]:
    return _simulate(cfg, group, tmp, lambda: _ticks.put(1))


def _simulate_in_processes(
    cfg: BankConfig, groups: list[_Group], tmp: Path, workers: int, advance: Callable[[], None]
) -> list[tuple[Counter, Counter]]:
    """The groups simulated by ``workers`` processes at once (started clean: ``spawn``)."""
    context = multiprocessing.get_context("spawn")
    ticks = context.Queue()
    with ProcessPoolExecutor(
        min(workers, len(groups)), context, initializer=_start_worker, initargs=(ticks,)
    ) as pool:
        futures = [pool.submit(_simulate_in_worker, cfg, group, tmp) for group in groups]
        pending = futures
        while pending:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            while not ticks.empty():
                ticks.get()
                advance()
            failed = [f for f in futures if f.done() and f.exception() is not None]
            if failed:
                pool.shutdown(wait=False, cancel_futures=True)
                raise failed[0].exception()
        return [future.result() for future in futures]


def _finish(
    cfg: BankConfig, tmp: Path, out: Path, counts: list[tuple[Counter, Counter]]
) -> BankSummary:
    """Move the finished folders into place; the summary of every group's counts."""
    cfg.contract.write(tmp / "raw")
    for folder in ("raw", "oracle"):
        target = out / folder
        if target.exists():
            shutil.rmtree(target)
        (tmp / folder).rename(target)
    rows = sum((r for r, _ in counts), Counter())
    events = sum((e for _, e in counts), Counter())
    order = [t for t in schema.TABLE_ORDER if t in rows]
    return BankSummary(out, {t: rows[t] for t in order}, dict(sorted(events.items())))


class _Writers:
    """Writes one group's parts, numbering its rows from its id space."""

    def __init__(self, tmp: Path, translation: Translation, ids: IdSpace) -> None:
        self.tmp = tmp
        self.translation = translation
        self.ids = ids
        self.rows: Counter = Counter()
        self.events: Counter = Counter()
        self.next_row = {"transactions": 1, "interactions": 1}

    def add(self, name: str, frame: pd.DataFrame, customer_ids: np.ndarray, t: int) -> None:
        table = schema.TABLES[name]
        frame = frame.reset_index(drop=True)
        id_column = table.primary_key[0]
        if name in self.next_row:
            frame[id_column] = self.ids.ids(self.next_row[name], len(frame))
            self.next_row[name] += len(frame)
        if name == "interactions":
            frame = _decode_interactions(frame, customer_ids)
        self._write(name, frame, t)

    def table(self, name: str, frame: pd.DataFrame) -> None:
        self._write(name, frame, 0)

    def _part(self, t: int) -> str:
        return f"part-{t:04d}-{self.ids.group:04d}.parquet"

    def _write(self, name: str, frame: pd.DataFrame, t: int) -> None:
        table = schema.TABLES[name]
        frame = self.translation.table(name, frame)
        folder = self.tmp / "raw" / name
        folder.mkdir(exist_ok=True)
        columns = {}
        for column in table.columns:
            values, arrow_type = frame[column.name], ARROW_TYPES[column.dtype]
            if isinstance(values.dtype, pd.CategoricalDtype):  # Arrow decodes the codes
                columns[column.name] = pa.array(values).cast(arrow_type)
            else:
                columns[column.name] = pa.array(values, type=arrow_type, from_pandas=True)
        layout = arrow_schema(table)
        pq.write_table(
            pa.table(columns, schema=layout),
            folder / self._part(t),
            use_dictionary=dictionary_columns(layout),
        )
        self.rows[name] += len(frame)

    def oracle(self, probabilities: pd.DataFrame, events: pd.DataFrame, t: int) -> None:
        probabilities = self.translation.products(probabilities)
        events = self.translation.products(events)
        pq.write_table(
            pa.Table.from_pandas(probabilities, ORACLE_SCHEMA, preserve_index=False),
            self.tmp / "oracle/probabilities" / self._part(t),
        )
        pq.write_table(
            pa.Table.from_pandas(events, EVENTS_SCHEMA, preserve_index=False),
            self.tmp / "oracle/events" / self._part(t),
        )
        self.events.update(events["outcome"].value_counts().to_dict())


def _decode_interactions(frame: pd.DataFrame, customer_ids: np.ndarray) -> pd.DataFrame:
    frame["customer_id"] = customer_ids[frame.pop("_customer").to_numpy()]
    frame["kind"] = pd.Categorical.from_codes(frame["kind"], vocabulary.INTERACTION_KINDS)
    frame["channel"] = pd.Categorical.from_codes(frame["channel"], vocabulary.INTERACTION_CHANNELS)
    frame["product"] = pd.Categorical.from_codes(frame["product"], vocabulary.PRODUCTS)
    frame["complaint_category"] = pd.Categorical.from_codes(
        frame["complaint_category"], vocabulary.COMPLAINT_CATEGORIES
    )
    score = frame["satisfaction_score"]
    frame["satisfaction_score"] = pd.array(score.where(score > 0), dtype="Int64")
    return frame
