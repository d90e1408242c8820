"""Campaign contacts the synthetic bank simulates, so a campaign's measured lift is real.

A contact file lists who a campaign contacted, when, for which product: CSV or Parquet with the
columns of :data:`CONTACT_COLUMNS` (a console campaign export has them; rows with ``contacted``
false, the control group, are not contacts). Each contacted customer gets a ``campaign_contact``
interaction on the campaign date and, for :data:`hazards.CONTACT_EFFECT_MONTHS` months from the
first month starting on or after it, :data:`hazards.CONTACT_UPLIFT` more log-odds on the monthly
hazard of opening that product. Both happen without drawing a random number: every month before a
campaign is byte-identical to the same bank generated without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crmscore.contract import DEFAULT_CONTRACT, BankContract
from crmscore.synthetic import vocabulary

#: Columns a contact file must have (``contacted`` is optional: absent means every row).
CONTACT_COLUMNS = ("customer_id", "product", "campaign_date")


@dataclass(frozen=True)
class Contacts:
    """Contacts as arrays: customer position, cross-sell product index, contact time, and the
    first simulated month the contact works in."""

    position: np.ndarray
    product: np.ndarray
    when: np.ndarray  # datetime64[s]
    first_month: np.ndarray

    def rows(self, lo: int, hi: int) -> Contacts:
        """The contacts of customers at positions ``lo .. hi - 1``, positioned from ``lo``."""
        mine = (self.position >= lo) & (self.position < hi)
        return Contacts(
            self.position[mine] - lo, self.product[mine], self.when[mine], self.first_month[mine]
        )

    @classmethod
    def none(cls) -> Contacts:
        empty = np.array([], dtype=np.int64)
        return cls(empty, empty, np.array([], dtype="datetime64[s]"), empty)


def read_contacts(paths: list[Path], contract: BankContract = DEFAULT_CONTRACT) -> pd.DataFrame:
    """Every contact row of the files (``customer_id``, ``product``, ``campaign_date``), checked:
    a missing column or an unknown product is an error naming the file. Products are named as in
    ``contract`` (the bank being generated) and returned in the simulator's own names."""
    offers = contract.cross_sell_products
    # the bank's product name -> the simulated product written under it
    simulated = {v: k for k, v in vocabulary.Translation(contract).maps.get("products", {}).items()}
    frames = []
    for path in paths:
        path = Path(path)
        if path.suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"--campaigns {path}: use a .csv or .parquet contact file")
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        missing = [c for c in CONTACT_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"--campaigns {path}: missing column(s) {missing}")
        if "contacted" in frame.columns:
            frame = frame[frame["contacted"].astype(str).str.lower().isin(["true", "1"])]
        unknown = sorted(set(frame["product"]) - set(offers))
        if unknown:
            raise ValueError(
                f"--campaigns {path}: unknown product(s) {unknown}; expected any of {list(offers)}"
            )
        frame = frame.assign(product=frame["product"].map(lambda p: simulated.get(p, p)))
        frames.append(frame[list(CONTACT_COLUMNS)])
    if not frames:
        return pd.DataFrame(columns=list(CONTACT_COLUMNS))
    contacts = pd.concat(frames, ignore_index=True)
    contacts["campaign_date"] = pd.to_datetime(contacts["campaign_date"])
    return contacts.drop_duplicates()


def locate(contacts: pd.DataFrame, customer_ids: np.ndarray, month_start) -> Contacts:
    """``contacts`` for a simulation over ``customer_ids``; ``month_start(t)`` is month t's start.

    Unknown customer ids are an error: contacts come from a list of this very bank."""
    if contacts.empty:
        return Contacts.none()
    order = np.argsort(customer_ids)
    ids = contacts["customer_id"].to_numpy(dtype=np.int64)
    found = np.searchsorted(customer_ids, ids, sorter=order)
    found = np.minimum(found, len(customer_ids) - 1)
    position = order[found]
    unknown = customer_ids[position] != ids
    if unknown.any():
        raise ValueError(
            f"--campaigns: {int(unknown.sum())} contacted customer id(s) are not in this bank "
            f"(e.g. {int(ids[unknown][0])}): generate it with the campaign's seed and size"
        )
    when = contacts["campaign_date"].to_numpy().astype("datetime64[s]")
    # The first month starting on or after the contact: month 0 is the simulation's start.
    start = np.datetime64(month_start(0), "M")
    months = (when.astype("datetime64[M]") - start).astype(np.int64)
    starts_later = when > when.astype("datetime64[M]").astype("datetime64[s]")
    product = pd.Index(vocabulary.CROSS_SELL_PRODUCTS).get_indexer(contacts["product"])
    return Contacts(position, product.astype(np.int64), when, months + starts_later)
