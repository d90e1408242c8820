"""``generate_bank``: run the simulation and write the raw tables and the oracle."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crmscore import schema
from crmscore.dataset import ARROW_TYPES, arrow_schema
from crmscore.synthetic import vocabulary
from crmscore.synthetic.config import BankConfig
from crmscore.synthetic.contacts import locate
from crmscore.synthetic.population import make_customers
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


def generate_bank(
    cfg: BankConfig, out: Path, progress: bool = True, contacts: pd.DataFrame | None = None
) -> BankSummary:
    """Simulate ``cfg`` and write ``out/raw/<table>/`` and ``out/oracle/``.

    ``contacts`` (:func:`crmscore.synthetic.contacts.read_contacts`) are campaign contacts to
    simulate: their effect starts at each campaign date, the months before are unchanged.
    Both folders are replaced only once everything is written, so a crash leaves any previous
    bank intact.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    translation = Translation(cfg.contract)  # fails early on a contract it cannot write
    rng = np.random.default_rng(cfg.seed)
    customers, traits = make_customers(cfg, rng)
    located = None
    if contacts is not None:
        located = locate(contacts, customers["customer_id"].to_numpy(), cfg.month_start)
    sim = BankSimulation(cfg, customers, traits, rng, located)

    with tempfile.TemporaryDirectory(dir=out, prefix=".generate-") as tmp:
        tmp = Path(tmp)
        writers = _Writers(tmp, translation)
        months = range(-cfg.burn_in, cfg.months)
        for t in _progress(months, progress, "Simulating months"):
            rows = sim.step(t)
            if rows is None:
                continue
            customer_ids = sim.customer_ids
            for name in ("transactions", "interactions"):
                frame = getattr(rows, name)
                frame = frame.sort_values(["ts"], kind="stable")
                writers.add(name, frame, customer_ids, t)
            writers.add("credit_status", rows.credit_status, customer_ids, t)
            writers.oracle(rows.oracle, rows.events, t)
        sim.settle_overdraft_limits()
        accounts = sim.book.table()
        first_open = accounts.groupby("customer_id")["open_date"].min()
        customers["join_date"] = np.minimum(
            customers["join_date"].to_numpy(),
            first_open.reindex(customers["customer_id"]).to_numpy(),
        )
        writers.table("customers", customers)
        writers.table("accounts", accounts)
        summary = writers.finish(out)
    return summary


class _Writers:
    """Writes month parts with stable ids, then moves the finished folders into place."""

    def __init__(self, tmp: Path, translation: Translation) -> None:
        self.tmp = tmp
        self.translation = translation
        self.rows: dict[str, int] = {}
        self.events: dict[str, int] = {}
        self.next_id = {"transactions": 1, "interactions": 1}
        for folder in ("raw", "oracle/probabilities", "oracle/events"):
            (tmp / folder).mkdir(parents=True)

    def add(self, name: str, frame: pd.DataFrame, customer_ids: np.ndarray, t: int) -> None:
        table = schema.TABLES[name]
        frame = frame.reset_index(drop=True)
        id_column = table.primary_key[0]
        if name in self.next_id:
            frame[id_column] = np.arange(self.next_id[name], self.next_id[name] + len(frame))
            self.next_id[name] += len(frame)
        if name == "interactions":
            frame = _decode_interactions(frame, customer_ids)
        self._write(name, frame, f"part-{t:04d}.parquet")

    def table(self, name: str, frame: pd.DataFrame) -> None:
        self._write(name, frame, "part-0000.parquet")

    def _write(self, name: str, frame: pd.DataFrame, part: str) -> None:
        table = schema.TABLES[name]
        frame = self.translation.table(name, frame)
        folder = self.tmp / "raw" / name
        folder.mkdir(exist_ok=True)
        columns = {}
        for column in table.columns:
            values = frame[column.name]
            if isinstance(values.dtype, pd.CategoricalDtype):
                values = values.astype(object)
            columns[column.name] = pa.array(
                values, type=ARROW_TYPES[column.dtype], from_pandas=True
            )
        pq.write_table(pa.table(columns, schema=arrow_schema(table)), folder / part)
        self.rows[name] = self.rows.get(name, 0) + len(frame)

    def oracle(self, probabilities: pd.DataFrame, events: pd.DataFrame, t: int) -> None:
        part = f"part-{t:04d}.parquet"
        probabilities = self.translation.products(probabilities)
        events = self.translation.products(events)
        pq.write_table(
            pa.Table.from_pandas(probabilities, ORACLE_SCHEMA, preserve_index=False),
            self.tmp / "oracle/probabilities" / part,
        )
        pq.write_table(
            pa.Table.from_pandas(events, EVENTS_SCHEMA, preserve_index=False),
            self.tmp / "oracle/events" / part,
        )
        for outcome, count in events["outcome"].value_counts().items():
            self.events[outcome] = self.events.get(outcome, 0) + int(count)

    def finish(self, out: Path) -> BankSummary:
        self.translation.target.write(self.tmp / "raw")
        for folder in ("raw", "oracle"):
            target = out / folder
            if target.exists():
                shutil.rmtree(target)
            (self.tmp / folder).rename(target)
        order = [t for t in schema.TABLE_ORDER if t in self.rows]
        return BankSummary(out, {t: self.rows[t] for t in order}, dict(sorted(self.events.items())))


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


def _progress(items, enabled: bool, label: str):
    if not enabled:
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=label)
