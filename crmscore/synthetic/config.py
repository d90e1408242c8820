"""What to simulate: size, length, seed."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from crmscore.contract import DEFAULT_CONTRACT, BankContract


@dataclass(frozen=True)
class EconomicShock:
    """A downturn from ``start`` (a month start) on, for testing monitoring: salaries fall, card
    spending (so credit-card utilisation) rises, and payments are missed more often than the
    observable behaviour alone explains (``missed_payment_odds`` multiplies the odds), as when
    unemployment rises. Random draws are unchanged, so the months before ``start`` are
    identical to the same bank without the shock."""

    start: str
    salary_cut: float = 0.3
    card_spend_rise: float = 1.0
    missed_payment_odds: float = 4.0


@dataclass(frozen=True)
class BankConfig:
    """Size and randomness of a synthetic bank.

    The same config always produces byte-identical tables.
    """

    customers: int = 20_000
    months: int = 24
    seed: int = 7
    start: str = "2024-01-01"
    #: Months simulated before ``start`` to fill the history hazards look back on; not written.
    burn_in: int = 3
    #: The vocabulary the bank writes its tables in (products, types, regions...); the simulated
    #: behaviour is the same, only the names are the bank's (see :mod:`.vocabulary`).
    contract: BankContract = DEFAULT_CONTRACT
    #: An economic shock from a month on (None: the economy stays as it is).
    shock: EconomicShock | None = None

    def __post_init__(self) -> None:
        if self.customers < 10:
            raise ValueError(f"customers must be at least 10, got {self.customers}")
        if self.months < 6:
            raise ValueError(f"months must be at least 6, got {self.months}")
        start = pd.Timestamp(self.start)
        if start != start.normalize() or start.day != 1:
            raise ValueError(f"start must be the first day of a month, got {self.start!r}")
        if self.shock is not None:
            shock = pd.Timestamp(self.shock.start)
            if shock != shock.normalize() or shock.day != 1:
                raise ValueError(f"the shock must start on a month start, got {self.shock.start!r}")

    def shocked(self, t: int) -> EconomicShock | None:
        """The shock in force in month ``t``, if any."""
        if self.shock is None or self.month_start(t) < pd.Timestamp(self.shock.start):
            return None
        return self.shock

    def month_start(self, t: int) -> pd.Timestamp:
        """First instant of simulated month ``t`` (0 = ``start``)."""
        return pd.Timestamp(self.start) + pd.DateOffset(months=t)
