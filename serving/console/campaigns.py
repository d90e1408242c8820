"""Campaigns: a saved target list with a random control group, and its measured effect.

A campaign is what marketing decided on a given day: the :class:`~serving.targets.TargetQuery`,
the champions and feature snapshot it was ranked with, and the resulting list. A share of the list
is held out at random as a **control group** (drawn from the customer ids sorted, with the
campaign's seed, so the same list and seed always give the same control group); those customers
are flagged in the export and not contacted. Once the campaign's window has passed, take-up
(an account of the product opened within ``window_months`` of the campaign date, read from the raw
``accounts`` table) is compared between the contacted and the control customers: the difference is
the campaign's **lift**, with a 95% confidence interval (Newcombe's hybrid score interval for a
difference of two proportions, sound at the small counts campaigns have).

Storage: one folder per campaign under ``settings.campaigns_dir``, ``<id>/campaign.json`` (the
decision) and ``<id>/list.parquet`` (the list, :data:`LIST_SCHEMA`). Files, not a database: a
campaign never changes once saved, the list is a table other tools read as it is (the campaign
tool, ``crmscore generate --campaigns``), and a folder renamed into place appears whole or not at
all, in any server worker, with no lock.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.errors import InvalidRequest, UnknownCustomer

#: The list file's columns (the export adds nothing): one row per listed customer.
LIST_SCHEMA = pa.schema(
    [
        ("campaign_id", pa.string()),
        ("customer_id", pa.int64()),
        ("rank", pa.int64()),
        ("product", pa.string()),
        ("campaign_date", pa.date32()),
        ("group", pa.string()),  # "target" (contact) or "control" (hold out)
        ("contacted", pa.bool_()),
        ("propensity", pa.float64()),
        ("expected_value", pa.float64()),
        ("probability_of_default", pa.float64()),
        ("churn_probability", pa.float64()),
        ("tier", pa.string()),
        ("segment", pa.string()),
        ("region", pa.string()),
        ("reasons", pa.string()),  # the top reason sentences, " | " between them
    ]
)
TARGET, CONTROL = "target", "control"
#: Largest control share a form may ask for: beyond half it is no longer a campaign.
MAX_CONTROL_SHARE = 0.5
#: Two-sided confidence of the lift interval, and its normal quantile.
CONFIDENCE = 0.95
Z = 1.959963984540054
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,80}$")


@dataclass(frozen=True)
class Campaign:
    """The decision recorded with a saved list (``campaign.json``)."""

    id: str
    name: str
    product: str
    campaign_date: date
    window_months: int
    control_share: float
    seed: int
    query: dict
    models: dict
    snapshot: date
    created_at: str
    created_by: str
    counts: dict = field(default_factory=dict)

    @property
    def window_end(self) -> date:
        """First day after the window in which take-up counts."""
        return (pd.Timestamp(self.campaign_date) + pd.DateOffset(months=self.window_months)).date()

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Campaign:
        data = json.loads(text)
        for name in ("campaign_date", "snapshot"):
            data[name] = date.fromisoformat(data[name])
        return cls(**data)


def new_campaign_id(product: str, today: date | None = None) -> str:
    """``20260101-mortgage-3fa9c2``: sortable by day, readable, unique without a counter."""
    today = today or datetime.now(UTC).date()
    return f"{today:%Y%m%d}-{product.replace('_', '-')}-{secrets.token_hex(3)}"


def control_mask(customer_ids: pd.Series, share: float, seed: int) -> np.ndarray:
    """True for the customers held out: ``round(share x n)`` of them, drawn with ``seed`` from
    the ids in sorted order, so the draw depends on who is listed, not on the ranking."""
    if not 0 <= share <= MAX_CONTROL_SHARE:
        raise InvalidRequest(
            f"control_share must lie in [0, {MAX_CONTROL_SHARE}], got {share}",
            field="control_share",
        )
    ids = np.sort(customer_ids.to_numpy(dtype=np.int64))
    held = np.random.default_rng(seed).choice(ids, size=round(share * len(ids)), replace=False)
    return np.isin(customer_ids.to_numpy(dtype=np.int64), held)


def campaign_list(campaign: Campaign, ranked: pd.DataFrame) -> pd.DataFrame:
    """The list file's rows for a ranked target list (:func:`serving.targets.select_targets` +
    :func:`~serving.targets.with_reasons`): control group drawn, every column of the schema."""
    control = control_mask(ranked["customer_id"], campaign.control_share, campaign.seed)
    reasons = ranked["reasons"] if "reasons" in ranked else [[] for _ in range(len(ranked))]
    frame = pd.DataFrame(
        {
            "campaign_id": campaign.id,
            "customer_id": ranked["customer_id"].astype("int64").to_numpy(),
            "rank": ranked["rank"].astype("int64").to_numpy(),
            "product": campaign.product,
            "campaign_date": campaign.campaign_date,
            "group": np.where(control, CONTROL, TARGET),
            "contacted": ~control,
            **{
                name: ranked[name].to_numpy()
                for name in (
                    "propensity",
                    "expected_value",
                    "probability_of_default",
                    "churn_probability",
                    "tier",
                    "segment",
                    "region",
                )
            },
            "reasons": [" | ".join(r) for r in reasons],
        }
    )
    return frame[LIST_SCHEMA.names]


# --- storage -------------------------------------------------------------------------------------


def save_campaign(campaign: Campaign, frame: pd.DataFrame, root: Path) -> Path:
    """Write ``root/<id>/`` (``campaign.json`` + ``list.parquet``) whole or not at all."""
    if not _ID.match(campaign.id):
        raise InvalidRequest(f"campaign id {campaign.id!r} is not a valid id", field="id")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / campaign.id
    staging = root / f".{campaign.id}.{os.getpid()}.partial"
    staging.mkdir()
    try:
        table = pa.Table.from_pandas(frame, schema=LIST_SCHEMA, preserve_index=False)
        pq.write_table(table, staging / "list.parquet")
        (staging / "campaign.json").write_text(campaign.to_json(), encoding="utf-8")
        staging.rename(final)  # atomic; refuses to replace an existing campaign
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def load_campaign(campaign_id: str, root: Path) -> tuple[Campaign, pd.DataFrame]:
    """A saved campaign and its list; :class:`UnknownCustomer`-style 404 when there is none."""
    folder = Path(root) / campaign_id
    if not _ID.match(campaign_id) or not (folder / "campaign.json").is_file():
        raise UnknownCampaign(f"no campaign {campaign_id!r} in {root}", field="campaign_id")
    campaign = Campaign.from_json((folder / "campaign.json").read_text(encoding="utf-8"))
    return campaign, pd.read_parquet(folder / "list.parquet")


def list_campaigns(root: Path) -> list[Campaign]:
    """Every saved campaign, newest first (half-written folders are invisible: they start with
    a dot until renamed)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        Campaign.from_json((folder / "campaign.json").read_text(encoding="utf-8"))
        for folder in root.iterdir()
        if _ID.match(folder.name) and (folder / "campaign.json").is_file()
    ]
    return sorted(found, key=lambda c: (c.created_at, c.id), reverse=True)


class UnknownCampaign(UnknownCustomer):
    """No saved campaign under that id (404)."""


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TakeUp:
    """How many customers of a group opened the product within the window."""

    customers: int
    took_up: int

    @property
    def rate(self) -> float:
        return self.took_up / self.customers if self.customers else math.nan


@dataclass(frozen=True)
class CampaignResult:
    """Take-up of the contacted and the control customers and the difference (the lift)."""

    campaign: Campaign
    data_until: date
    target: TakeUp
    control: TakeUp
    lift: float  # target rate - control rate (a share; x100 for percentage points)
    lift_low: float
    lift_high: float

    @property
    def relative_lift(self) -> float:
        rate = self.control.rate
        return self.target.rate / rate if rate and rate == rate else math.nan


def wilson(took_up: int, customers: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if customers == 0:
        return math.nan, math.nan
    p = took_up / customers
    centre = p + z * z / (2 * customers)
    spread = z * math.sqrt(p * (1 - p) / customers + z * z / (4 * customers * customers))
    scale = 1 + z * z / customers
    return (centre - spread) / scale, (centre + spread) / scale


def lift_interval(target: TakeUp, control: TakeUp, z: float = Z) -> tuple[float, float, float]:
    """``(difference, low, high)`` of target minus control take-up: Newcombe's hybrid score
    interval (his method 10), built from the two Wilson intervals."""
    p1, p2 = target.rate, control.rate
    l1, u1 = wilson(target.took_up, target.customers, z)
    l2, u2 = wilson(control.took_up, control.customers, z)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return difference, low, high


def raw_data_until(raw_dir: Path) -> date:
    """The last day the raw data covers: the latest posted transaction."""
    import duckdb

    with duckdb.connect() as con:
        (last,) = con.execute(
            f"SELECT max(ts) FROM read_parquet('{Path(raw_dir) / 'transactions'}/*.parquet')"
        ).fetchone()
    return pd.Timestamp(last).date()


def campaign_results(campaign: Campaign, frame: pd.DataFrame, raw_dir: Path) -> CampaignResult:
    """Take-up among the contacted and the control customers of a saved campaign.

    Raises :class:`InvalidRequest` while the window has not passed in the raw data: a partial
    window would understate both groups' take-up and say nothing sound about the lift.
    """
    import duckdb

    until = raw_data_until(raw_dir)
    if until < campaign.window_end - pd.Timedelta(days=1):
        raise CampaignPending(
            f"campaign {campaign.id}'s window runs to {campaign.window_end:%Y-%m-%d} but the raw "
            f"data ends on {until:%Y-%m-%d}: results once the window has passed",
            field="campaign_id",
        )
    listed = frame[["customer_id", "group"]]
    with duckdb.connect() as con:
        con.register("listed", listed)
        opened = con.execute(
            f"""
            SELECT DISTINCT customer_id FROM read_parquet('{Path(raw_dir) / "accounts"}/*.parquet')
            WHERE product = ? AND open_date >= ? AND open_date < ?
              AND customer_id IN (SELECT customer_id FROM listed)
            """,
            [campaign.product, campaign.campaign_date, campaign.window_end],
        ).df()["customer_id"]
    took = listed["customer_id"].isin(opened)

    def group(name: str) -> TakeUp:
        rows = listed["group"] == name
        return TakeUp(customers=int(rows.sum()), took_up=int((took & rows).sum()))

    target, control = group(TARGET), group(CONTROL)
    lift, low, high = lift_interval(target, control)
    return CampaignResult(campaign, until, target, control, lift, low, high)


class CampaignPending(InvalidRequest):
    """Results asked for before the campaign's window has passed (400)."""
