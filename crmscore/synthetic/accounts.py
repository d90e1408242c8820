"""The account book of the synthetic bank: who holds what, since when, until when."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmscore.synthetic.vocabulary import PRODUCTS

PRODUCT_INDEX = {p: i for i, p in enumerate(PRODUCTS)}


@dataclass(frozen=True)
class IdSpace:
    """Ids of one group of a bank simulated in ``groups`` independent groups.

    Group ``g`` numbers its ``n``-th row (n = 1, 2, ...) ``(n - 1) * groups + g + 1``: ids are
    unique across the groups without the groups talking to each other, and a bank of one group
    numbers 1, 2, 3... as before.
    """

    group: int = 0
    groups: int = 1

    def ids(self, first: int, n: int) -> np.ndarray:
        """The ids of this group's rows ``first .. first + n - 1`` (counted from 1)."""
        return (np.arange(first - 1, first - 1 + n, dtype=np.int64) * self.groups) + self.group + 1

    def index(self, ids: np.ndarray) -> np.ndarray:
        """Position (from 0) of each id among this group's rows."""
        return (ids - 1) // self.groups


#: The id space of a bank simulated as one group.
ONE_GROUP = IdSpace()


class AccountBook:
    """Open and close accounts in bulk; keeps one open account per customer and product.

    ``account_of[c, p]`` is the id of customer ``c``'s open account of product ``p`` (0 if none).
    """

    def __init__(self, customer_ids: np.ndarray, ids: IdSpace = ONE_GROUP) -> None:
        self.customer_ids = customer_ids
        self.ids = ids
        self.account_of = np.zeros((len(customer_ids), len(PRODUCTS)), dtype=np.int64)
        self._rows: list[pd.DataFrame] = []
        self._closures: list[tuple[np.ndarray, np.ndarray]] = []
        self._limits: dict[int, float] = {}
        self._next_row = 1
        # indexed by ids.index(account_id), for fast look-ups during simulation
        self._open_dates = np.empty(0, dtype="datetime64[ns]")
        self._maturities = np.empty(0, dtype="datetime64[ns]")

    @property
    def holds(self) -> np.ndarray:
        return self.account_of > 0

    def open(
        self,
        customers: np.ndarray,
        product: str,
        open_date: np.ndarray,
        limit: np.ndarray | float = 0.0,
        maturity_date: np.ndarray | None = None,
    ) -> np.ndarray:
        """Open one ``product`` account for each customer index; returns the new account ids."""
        n = len(customers)
        ids = self.ids.ids(self._next_row, n)
        self._next_row += n
        self.account_of[customers, PRODUCT_INDEX[product]] = ids
        opened = pd.to_datetime(np.broadcast_to(np.asarray(open_date), (n,))).normalize()
        matures = (
            np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
            if maturity_date is None
            else pd.to_datetime(maturity_date).normalize().to_numpy()
        )
        self._open_dates = np.concatenate([self._open_dates, opened.to_numpy()])
        self._maturities = np.concatenate([self._maturities, matures])
        self._rows.append(
            pd.DataFrame(
                {
                    "account_id": ids,
                    "customer_id": self.customer_ids[customers],
                    "product": product,
                    "open_date": opened,
                    "maturity_date": matures,
                    "limit_amount": np.round(np.broadcast_to(limit, (n,)).astype(float), 2),
                }
            )
        )
        return ids

    def close(self, customers: np.ndarray, product: str, close_date: np.ndarray) -> None:
        """Close the open ``product`` account of each customer index that has one."""
        col = PRODUCT_INDEX[product]
        ids = self.account_of[customers, col]
        held = ids > 0
        dates = np.broadcast_to(np.asarray(close_date, dtype="datetime64[ns]"), (len(customers),))
        self._closures.append((ids[held], dates[held]))
        self.account_of[customers[held], col] = 0

    def close_all(self, customers: np.ndarray, close_date: np.ndarray) -> None:
        for product in PRODUCTS:
            self.close(customers, product, close_date)

    def maturity_of(self, account_ids: np.ndarray) -> np.ndarray:
        return self._maturities[self.ids.index(account_ids)]

    def opened_before(self, account_ids: np.ndarray, when: np.datetime64) -> np.ndarray:
        return self._open_dates[self.ids.index(account_ids)] <= when

    def raise_limit(self, account_ids: np.ndarray, limits: np.ndarray) -> None:
        """Record a final limit for accounts (overdraft limits are settled after simulation)."""
        self._limits.update(zip(account_ids.tolist(), limits.tolist(), strict=True))

    def table(self) -> pd.DataFrame:
        """The ``accounts`` table in schema order."""
        accounts = pd.concat(self._rows, ignore_index=True)
        close = pd.Series(pd.NaT, index=accounts["account_id"], dtype="datetime64[ns]")
        if self._closures:
            ids = np.concatenate([c[0] for c in self._closures])
            dates = np.concatenate([c[1] for c in self._closures])
            close.loc[ids] = pd.to_datetime(dates).normalize()
        accounts["close_date"] = close.to_numpy()
        if self._limits:
            new = accounts["account_id"].map(self._limits)
            accounts["limit_amount"] = np.round(new.fillna(accounts["limit_amount"]), 2)
        for col in ("open_date", "close_date", "maturity_date"):
            accounts[col] = accounts[col].dt.date
        return accounts[
            [
                "account_id",
                "customer_id",
                "product",
                "open_date",
                "close_date",
                "maturity_date",
                "limit_amount",
            ]
        ]
