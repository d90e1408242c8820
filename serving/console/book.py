"""The customer book behind every console page: all customers scored at the latest snapshot and
at the snapshots before it, plus their recent interactions.

Built once per loaded set of champions, in the background (a page asked before it is ready says
so and refreshes itself), then every page reads it from memory: that is how pages answer in
milliseconds on a bank whose every score needs a model call.

* **Latest snapshot**: the one the online store was loaded from (as ``crmscore score``), read in
  bulk from Feast's offline store; scores are :func:`serving.scoring.score_frame`'s, so a
  customer's page shows what ``POST /score`` answers.
* **History**: the same point-in-time read and scoring at each of the ``console.history_snapshots``
  month starts up to the latest, with today's champions (a trend in the customer, not in the
  models).
* **Offer reasons**: the first cross-sell reason behind the next best product of every customer
  with a manager (TreeSHAP by product over them at once: the worklists list them without
  waiting).
* **Interactions**: the latest ``console.interactions_shown`` per customer from the raw
  ``interactions`` table (a declared-schema file), without app logins and page views.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from crmscore.settings import Settings
from serving.champions import Champions

if TYPE_CHECKING:
    from features.online import FeatureRows
    from serving.scoring import Scores

logger = logging.getLogger("crmscore.console")

#: Profile attributes the pages read beside the score inputs (no model uses them).
ATTRIBUTES: tuple[str, ...] = ("manager_id", "branch_id", "int_days_since_manager_call")
#: Columns of the history kept per customer and snapshot.
HISTORY_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "value",
    "churn_probability",
    "probability_of_default",
    "has_credit",
    "active",
    "tier",
)
#: Attribute columns copied onto the scores (groupings of the portfolio, the worklist's owner).
GROUPING = ("segment", "region", "branch_id", "manager_id")
#: Customers explained per call when the book's offer reasons are computed (bounds memory).
EXPLAIN_CHUNK = 2000
#: Interaction kinds too frequent to list one by one.
UNLISTED_KINDS = ("app_login", "product_page_view")


@dataclass(frozen=True)
class Book:
    """Everything the pages show, computed for one set of champions."""

    champions: Champions
    snapshot: pd.Timestamp
    #: Every customer's features at ``snapshot`` (score inputs, rule and console attributes), as
    #: serving's arrays (what targets and explanations read) and as a frame (what pages read).
    rows: FeatureRows
    features: pd.DataFrame
    #: The scores of ``rows``, as serving's arrays and as flat rows plus :data:`GROUPING` columns.
    scored: Scores
    scores: pd.DataFrame
    #: :data:`HISTORY_COLUMNS` + ``snapshot`` + the groupings, one row per customer and snapshot.
    history: pd.DataFrame
    #: Recent interactions, indexed by ``customer_id``, newest first; None without the table.
    interactions: pd.DataFrame | None
    seconds: float
    #: Aggregates the pages derive from the book, computed once (the book never changes).
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def position(self, customer_id: int) -> int | None:
        """Row of ``customer_id`` in ``features``/``scores``; None for an unknown customer."""
        if "index" not in self.memo:
            self.memo["index"] = pd.Index(self.scores["customer_id"].astype("int64"))
        index = self.memo["index"]
        return int(index.get_loc(customer_id)) if customer_id in index else None

    def snapshots(self) -> list[pd.Timestamp]:
        return sorted(self.history["snapshot"].unique())

    def customer_history(self, customer_id: int) -> pd.DataFrame:
        rows = self.history[self.history["customer_id"] == customer_id]
        return rows.sort_values("snapshot")

    def customer_interactions(self, customer_id: int) -> pd.DataFrame:
        if self.interactions is None or customer_id not in self.interactions.index:
            return pd.DataFrame(columns=["ts", "channel", "kind", "product", "detail"])
        return self.interactions.loc[[customer_id]].reset_index(drop=True)


def build_book(champions: Champions, settings: Settings) -> Book:
    """Score every customer of the raw ``customers`` table at the latest snapshots."""
    from features.materialize import latest_snapshot
    from serving.batch import all_customer_ids, score_customers
    from serving.feature_source import SnapshotFeatures
    from serving.scoring import is_active

    started = time.perf_counter()
    ids = all_customer_ids(settings.raw_dir)
    source = SnapshotFeatures([*champions.feature_names(), *ATTRIBUTES])
    latest = pd.Timestamp(latest_snapshot())
    frames = []
    first = None
    for back in range(settings.console.history_snapshots):
        source.snapshot = latest - pd.DateOffset(months=back)
        rows, scored, _ = score_customers(
            champions, source, ids, settings.serving, settings.serving.snapshot_chunk
        )
        if not len(rows):
            break  # before the first snapshot
        found = rows.to_frame()
        # a grouping the bank's data lacks (an optional column) is shown as unknown
        table = scored.to_frame().assign(
            active=is_active(rows),
            **{c: found[c].to_numpy() if c in found else None for c in GROUPING},
        )
        if first is None:
            first = (rows, found, scored, table)
        frames.append(
            table[[*HISTORY_COLUMNS, *GROUPING]].assign(snapshot=source.snapshot.tz_localize(None))
        )
    if first is None:
        raise LookupError(f"no customer has features at the latest snapshot {latest:%Y-%m-%d}")
    rows, features, scored, scores = first
    # for the worklists' customers only: TreeSHAP over the whole book would double the build
    managed = scores["manager_id"].notna().to_numpy()
    scores = scores.assign(offer_reason=offer_reasons(champions, rows, scores, managed))
    history = pd.concat(frames, ignore_index=True)
    return Book(
        champions=champions,
        snapshot=latest.tz_localize(None),
        rows=rows,
        features=features,
        scored=scored,
        scores=scores,
        history=history,
        interactions=recent_interactions(settings.raw_dir, settings.console.interactions_shown),
        seconds=time.perf_counter() - started,
    )


def offer_reasons(
    champions: Champions, rows: FeatureRows, scores: pd.DataFrame, wanted
) -> list[str | None]:
    """The first reason sentence behind each ``wanted`` row's next best product (None elsewhere
    and without an offer): :func:`serving.explain.explain_rows` per product, :data:`EXPLAIN_CHUNK`
    rows at a time (an explanation holds every contribution)."""
    from serving.explain import explain_rows

    model = champions.compiled["cross_sell"]
    reasons: list[str | None] = [None] * len(scores)
    for product, group in scores[wanted].groupby("next_best_product").groups.items():
        positions = scores.index.get_indexer(group)
        for start in range(0, len(positions), EXPLAIN_CHUNK):
            chunk = positions[start : start + EXPLAIN_CHUNK]
            explained = explain_rows(model, rows.take(chunk), product=str(product))
            for position, explanation in zip(chunk, explained, strict=True):
                top = explanation.reasons
                reasons[position] = top[0].sentence if top else None
    return reasons


def recent_interactions(raw_dir: Path, limit: int) -> pd.DataFrame | None:
    """The latest ``limit`` listed interactions of every customer, newest first, indexed by
    ``customer_id``; None when the bank has no interaction log."""
    import duckdb

    folder = Path(raw_dir) / "interactions"
    if not folder.is_dir():
        return None
    unlisted = ", ".join(f"'{k}'" for k in UNLISTED_KINDS)
    query = f"""
        SELECT customer_id, ts, channel, kind, product, complaint_category, resolution_days,
               satisfaction_score
        FROM read_parquet('{folder}/*.parquet')
        WHERE kind NOT IN ({unlisted})
        QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY ts DESC) <= {int(limit)}
        ORDER BY customer_id, ts DESC
    """
    with duckdb.connect() as con:
        frame = con.execute(query).df()
    return frame.set_index("customer_id")


class BookKeeper:
    """Holds the book of the champions in use; builds a new one in the background when they
    change (``/reload``), keeping the old one readable meanwhile."""

    def __init__(self, champions: Callable[[], Champions], settings: Callable[[], Settings]):
        self._champions = champions
        self._settings = settings
        self._lock = threading.Lock()
        self._book: Book | None = None
        self._building: Champions | None = None
        self.problem: str | None = None

    def current(self) -> Book | None:
        """The book of the champions in use, or the previous one while that is being built; None
        before the first is ready (a build is then started)."""
        champions = self._champions()
        book = self._book
        if book is None or book.champions is not champions:
            self._start(champions)
        return self._book

    def _start(self, champions: Champions) -> None:
        with self._lock:
            if self._building is champions or (self._book and self._book.champions is champions):
                return
            self._building = champions
        threading.Thread(
            target=self._build, args=(champions,), name="console-book", daemon=True
        ).start()

    def _build(self, champions: Champions) -> None:
        try:
            book = build_book(champions, self._settings())
        except Exception as error:  # shown on the pages; the next request tries again
            logger.exception("could not build the console's customer book")
            self.problem = f"{type(error).__name__}: {error}"
        else:
            self._book, self.problem = book, None
            logger.info(
                "console book: %d customers x %d snapshots in %.1f s",
                len(book.scores),
                len(book.snapshots()),
                book.seconds,
            )
        finally:
            with self._lock:
                self._building = None
