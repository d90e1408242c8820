"""Month-by-month simulation of the synthetic bank.

Each month, for all customers at once (NumPy, no per-row Python):
1. observe what the bank could see at the month start (:class:`hazards.Observed`);
2. compute the true hazards and record the oracle;
3. draw this month's outcome events (churn, product openings, missed payments);
4. draw behaviour (transactions, interactions) and post it to the accounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crmscore.synthetic import hazards, vocabulary
from crmscore.synthetic.accounts import ONE_GROUP, PRODUCT_INDEX, AccountBook, IdSpace
from crmscore.synthetic.config import BankConfig
from crmscore.synthetic.contacts import Contacts
from crmscore.synthetic.population import Traits

XS = vocabulary.CROSS_SELL_PRODUCTS
XS_INDEX = {p: j for j, p in enumerate(XS)}
TX_CODE = {t: i for i, t in enumerate(vocabulary.TRANSACTION_TYPES)}
CH_CODE = {c: i for i, c in enumerate(vocabulary.TRANSACTION_CHANNELS)}
IX_CODE = {k: i for i, k in enumerate(vocabulary.INTERACTION_KINDS)}
ICH_CODE = {c: i for i, c in enumerate(vocabulary.INTERACTION_CHANNELS)}
DAY = 86_400
NEVER = 999  # "months since" for something that never happened
#: Columns of the realised-outcome rows (``oracle/events``).
EVENT_COLUMNS = ("customer_id", "outcome", "product", "event_date")
WRITE_OFF_MONTHS = 6  # defaulted credit accounts are closed this long after reaching 90 dpd


def stable_order(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """``np.lexsort((minor, major))`` of integer keys: the stable order by ``major``, then
    ``minor``. One stable argsort of a combined int64 key where it fits: a month's postings
    sorted three times faster than by ``lexsort``'s one pass per key."""
    if len(major) == 0:
        return np.arange(0)
    major, minor = major - major.min(), minor - minor.min()
    span = int(minor.max()) + 1
    if int(major.max()) >= (2**62) // span:  # the combined key would overflow
        return np.lexsort((minor, major))
    return np.argsort(major.astype(np.int64) * span + minor, kind="stable")


@dataclass
class MonthRows:
    """Everything one simulated month writes (frames in raw-schema columns)."""

    transactions: pd.DataFrame
    interactions: pd.DataFrame
    credit_status: pd.DataFrame
    oracle: pd.DataFrame
    events: pd.DataFrame


@dataclass
class _Balances:
    current: np.ndarray
    savings: np.ndarray
    card_owed: np.ndarray
    card_limit: np.ndarray
    loan: np.ndarray  # personal loan outstanding
    loan_instalment: np.ndarray
    mortgage: np.ndarray
    mortgage_instalment: np.ndarray
    overdraft_needed: np.ndarray  # deepest overdraft seen: settles the current account's limit


@dataclass
class _History:
    tx: np.ndarray  # (N, 4) customer-initiated transactions, most recent month first
    months_since_salary: np.ndarray
    complaints: np.ndarray  # (N, 3)
    views: np.ndarray  # (N, P, 3)
    responses: np.ndarray  # (N, P, 3)
    last_satisfaction: np.ndarray
    matured_month: np.ndarray
    missed_month: np.ndarray
    credit_opened_month: np.ndarray  # (N, 3) per credit product
    complaint_customer: list[np.ndarray] = field(default_factory=list)
    complaint_resolved_at: list[np.ndarray] = field(default_factory=list)  # datetime64[s]


@dataclass
class _Postings:
    """One month's postings as they are drawn (:meth:`BankSimulation._transactions`): a list of
    column tuples (customer index, account, type, amount, offset in the month, channel, merchant
    category), and the draws every kind of posting shares."""

    rng: np.random.Generator
    traits: Traits
    accounts: np.ndarray  # (N, products) account id held at the month start, 0 for none
    span: np.ndarray  # seconds of the month in which each customer can transact
    parts: list[tuple] = field(default_factory=list)

    def account(self, product: str) -> np.ndarray:
        return self.accounts[:, PRODUCT_INDEX[product]]

    def holds(self, product: str) -> np.ndarray:
        return self.account(product) > 0

    def post(self, cust, account, kind: str, amount, offset, channel, mcc=None) -> None:
        n = len(cust)
        self.parts.append(
            (
                cust,
                account,
                np.full(n, TX_CODE[kind]),
                amount,
                offset,
                channel,
                np.full(n, -1) if mcc is None else mcc,
            )
        )

    @staticmethod
    def fixed(cust: np.ndarray, channel: str) -> np.ndarray:
        return np.full(len(cust), CH_CODE[channel])

    def digital_channel(self, cust: np.ndarray) -> np.ndarray:
        """The app or online banking for the digitally minded, else the branch."""
        rng = self.rng
        return np.where(
            rng.random(len(cust)) < self.traits.digital[cust],
            np.where(rng.random(len(cust)) < 0.7, CH_CODE["mobile"], CH_CODE["online"]),
            CH_CODE["branch"],
        )

    def spread(self, counts: np.ndarray, weight_sd: float = 0.8):
        """Customer index per event, a random offset within the customer's active span, and a
        lognormal weight (the event's share of the customer's total)."""
        cust = np.repeat(np.arange(len(counts)), counts)
        offset = (self.rng.random(len(cust)) * self.span[cust]).astype(np.int64)
        return cust, offset, self.rng.lognormal(0, weight_sd, len(cust))


def add_months(dates: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Calendar-month arithmetic on an array of dates (day clipped to the month's end)."""
    dates = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    months = np.broadcast_to(np.asarray(months), (len(dates),))
    out = np.empty(len(dates), dtype="datetime64[ns]")
    for m in np.unique(months):
        sel = months == m
        out[sel] = (dates[sel] + pd.DateOffset(months=int(m))).to_numpy()
    return out


class BankSimulation:
    """State of the bank, advanced one month at a time by :meth:`step`."""

    def __init__(
        self,
        cfg: BankConfig,
        customers: pd.DataFrame,
        traits: Traits,
        rng,
        contacts: Contacts | None = None,
        ids: IdSpace = ONE_GROUP,
    ) -> None:
        self.cfg, self.traits, self.rng = cfg, traits, rng
        self.contacts = contacts or Contacts.none()
        n = len(customers)
        self.n = n
        self.customer_ids = customers["customer_id"].to_numpy()
        self.consent = customers["marketing_consent"].to_numpy()
        self.join_date = pd.to_datetime(customers["join_date"]).to_numpy()
        self.book = AccountBook(self.customer_ids, ids)
        self.active = np.ones(n, dtype=bool)
        self.engagement = traits.engagement.copy()
        self.intent = rng.normal(0, 0.7, (n, len(XS)))
        self.salary_here = traits.salaried.copy()
        self.arrears = np.zeros(n, dtype=np.int64)
        self.default_month = np.full(n, NEVER, dtype=np.int64)
        self.pay_ratio = np.where(rng.random(n) < hazards.sigmoid(traits.health), 1.0, 0.15)
        self.td_maturity = np.full(n, NEVER, dtype=np.int64)
        self.wm_maturity = np.full(n, NEVER, dtype=np.int64)
        self.loan_maturity = np.full(n, NEVER, dtype=np.int64)
        self.h = _History(
            tx=np.zeros((n, 4)),
            months_since_salary=np.where(self.salary_here, 0, NEVER),
            complaints=np.zeros((n, 3)),
            views=np.zeros((n, len(XS), 3)),
            responses=np.zeros((n, len(XS), 3)),
            last_satisfaction=np.zeros(n, dtype=np.int64),
            matured_month=np.full(n, -NEVER),
            missed_month=np.full(n, -NEVER),
            credit_opened_month=np.full((n, 3), -NEVER),
        )
        self._open_initial_accounts()

    # ----------------------------------------------------------------------------- initial book
    def _open_initial_accounts(self) -> None:
        t0 = -self.cfg.burn_in
        start = self.cfg.month_start(t0)
        rng, tr, n = self.rng, self.traits, self.n
        everyone = np.arange(n)

        def since_join(mask: np.ndarray) -> np.ndarray:
            join = self.join_date[mask]
            span = (np.datetime64(start) - join).astype("timedelta64[D]").astype(np.int64)
            days = (rng.random(mask.sum()) * np.maximum(span, 1)).astype(np.int64)
            return join + days.astype("timedelta64[D]")

        income = tr.income
        self.current_account_ids = self.book.open(
            everyone, "current", self.join_date, limit=np.round(income, -2)
        )
        self.bal = _Balances(
            current=np.round(income * rng.lognormal(-0.3, 0.5, n), 2),
            savings=np.zeros(n),
            card_owed=np.zeros(n),
            card_limit=np.zeros(n),
            loan=np.zeros(n),
            loan_instalment=np.zeros(n),
            mortgage=np.zeros(n),
            mortgage_instalment=np.zeros(n),
            overdraft_needed=np.round(income, -2),
        )
        age = tr.age
        p_hold = {
            "savings": np.full(n, 0.6),
            "credit_card": 0.2 + 0.2 * (income > 5_000),
            "personal_loan": 0.06 + 0.06 * ((age > 25) & (age < 50)),
            "mortgage": 0.2 * ((age > 28) & (age < 60)),
            "term_deposit": 0.08 + 0.1 * (tr.wealth > 3),
            "wealth_management": 0.04 + 0.1 * (tr.wealth > 5),
            "insurance": np.full(n, 0.12),
        }
        for product, p in p_hold.items():
            mask = rng.random(n) < p
            who = everyone[mask]
            opened = since_join(mask)
            if product == "savings":
                self.book.open(who, product, opened)
                self.bal.savings[who] = np.round(tr.wealth[who] * income[who] * 0.5, 2)
            elif product == "credit_card":
                limit = np.round(income[who] * 2.5, -2)
                self.book.open(who, product, opened, limit=limit)
                self.bal.card_limit[who] = limit
                self.bal.card_owed[who] = np.round(limit * rng.beta(1.5, 5, len(who)), 2)
            elif product in ("personal_loan", "mortgage"):
                self._open_credit(who, product, t0, opened_at=opened)
            elif product in ("term_deposit", "wealth_management"):
                term = rng.choice([6, 12, 24], len(who))
                months_ago = (rng.random(len(who)) * (term - 1)).astype(np.int64)
                opened = add_months(
                    np.datetime64(start, "D")
                    + rng.integers(0, 27, len(who)).astype("timedelta64[D]"),
                    -months_ago - 1,
                )
                self._open_maturing(who, product, opened, t0 - months_ago - 1, term)
            else:
                self.book.open(who, product, opened)

    def _open_credit(
        self, who: np.ndarray, product: str, t: int, opened_at: np.ndarray, new: bool = False
    ) -> None:
        """Open loans or mortgages; unless ``new``, the loan is part-repaid already."""
        rng, income = self.rng, self.traits.income[who]
        term = 36 if product == "personal_loan" else 240
        principal = np.round(
            income * rng.uniform(3, 12)
            if product == "personal_loan"
            else income * rng.uniform(40, 90, len(who)),
            -2,
        )
        principal = np.broadcast_to(principal, (len(who),)).astype(float)
        instalment = np.round(principal / term, 2)
        month0 = self.cfg.month_start(t)
        if new:
            elapsed = np.zeros(len(who), dtype=np.int64)
        else:
            elapsed = (np.datetime64(month0) - opened_at).astype("timedelta64[D]").astype(
                np.int64
            ) // 30
            elapsed = np.minimum(elapsed, term - 2)
        maturity = add_months(opened_at, np.full(len(who), term))
        self.book.open(who, product, opened_at, limit=principal, maturity_date=maturity)
        outstanding = np.round(principal - instalment * elapsed, 2)
        if product == "personal_loan":
            self.bal.loan[who], self.bal.loan_instalment[who] = outstanding, instalment
            self.loan_maturity[who] = t + term - elapsed
        else:
            self.bal.mortgage[who], self.bal.mortgage_instalment[who] = outstanding, instalment

    def _open_maturing(
        self, who: np.ndarray, product: str, opened: np.ndarray, t_open: int, term: np.ndarray
    ) -> None:
        """Open term deposits or wealth products maturing ``term`` months after ``opened``."""
        maturity = add_months(opened, term)
        principal = np.round(self.traits.income[who] * self.rng.uniform(2, 10, len(who)), -2)
        self.book.open(who, product, opened, limit=principal, maturity_date=maturity)
        target = self.td_maturity if product == "term_deposit" else self.wm_maturity
        target[who] = t_open + term

    # ------------------------------------------------------------------------------ observation
    def observe(self, t: int) -> hazards.Observed:
        h, b, tr = self.h, self.bal, self.traits
        holds = self.book.holds
        start = np.datetime64(self.cfg.month_start(t), "s")
        pending = np.zeros(self.n)
        if h.complaint_customer:
            cust = np.concatenate(h.complaint_customer)
            resolved = np.concatenate(h.complaint_resolved_at)
            pending = np.bincount(cust[resolved >= start], minlength=self.n).astype(float)
        has_card = holds[:, PRODUCT_INDEX["credit_card"]]
        return hazards.Observed(
            tx_last=h.tx[:, 0],
            tx_prev=h.tx[:, 1:].mean(axis=1),
            months_since_salary=h.months_since_salary,
            pending_complaints=pending,
            complaints_3m=h.complaints.sum(axis=1),
            n_products=holds.sum(axis=1),
            tenure_years=self.traits.tenure_years + (t + self.cfg.burn_in) / 12,
            last_satisfaction=h.last_satisfaction,
            views_3m=h.views.sum(axis=2),
            responded_3m=h.responses.sum(axis=2),
            idle_funds=(b.current + b.savings) / tr.income,
            matured_3m=(t - h.matured_month) <= 3,
            utilisation=np.where(has_card, b.card_owed / np.maximum(b.card_limit, 1), 0.0),
            overdrawn=b.current < 0,
            debt_service=(b.loan_instalment + b.mortgage_instalment + 0.05 * b.card_owed)
            / tr.income,
            delinquent_12m=(t - h.missed_month) <= 12,
            new_credit_6m=((t - h.credit_opened_month) <= 6).sum(axis=1),
            age=tr.age + (t + self.cfg.burn_in) / 12,
            income=tr.income,
            holds=holds,
            arrears=self.arrears,
        )

    # ------------------------------------------------------------------------------------- step
    def step(self, t: int) -> MonthRows | None:
        """Advance one month. Returns the month's rows, or None during burn-in."""
        write = t >= 0
        rng, n = self.rng, self.n
        month_start = self.cfg.month_start(t)
        days = month_start.days_in_month
        month_end = month_start + pd.Timedelta(days=days - 1)
        obs = self.observe(t)

        churn_h = hazards.churn_hazard(obs) * self.active
        miss_h = hazards.miss_hazard(obs)
        if shock := self.cfg.shocked(t):
            miss_h = hazards.scale_odds(miss_h, shock.missed_payment_odds)
        xsell_h = self._contact_uplift(
            t, hazards.cross_sell_hazards(obs, PRODUCT_INDEX) * self.active[:, None]
        )
        credit_cols = [PRODUCT_INDEX[p] for p in vocabulary.CREDIT_PRODUCTS]
        has_credit = obs.holds[:, credit_cols].any(axis=1) & self.active
        oracle = (
            self._oracle_rows(month_start, churn_h, miss_h, xsell_h, has_credit) if write else None
        )

        # ---- events drawn at the month start, dated within the month
        churning = (rng.random(n) < churn_h) & write
        churn_day = rng.integers(1, days, n)
        activity = np.where(churning, churn_day / days, 1.0) * self.active
        events = []

        # accounts opened during the month start posting next month
        self._accounts_at_start = self.book.account_of.copy()
        missed = self._arrears_step(t, miss_h, has_credit, write)
        newly_defaulted = (self.arrears == 3) & (self.default_month == NEVER)
        self.default_month[newly_defaulted] = t
        if write:
            d = np.flatnonzero(newly_defaulted)
            events.append(self._events(d, "default", None, month_end.date()))

        opens = (rng.random((n, len(XS))) < xsell_h) & ~churning[:, None] & write
        open_day = rng.integers(0, days - 1, (n, len(XS)))
        for j, product in enumerate(XS):
            who = np.flatnonzero(opens[:, j])
            if not len(who):
                continue
            when = np.datetime64(month_start, "s") + (open_day[who, j] * DAY).astype(
                "timedelta64[s]"
            )
            self._open_product(who, product, t, when)
            events.append(self._events(who, "cross_sell", product, pd.to_datetime(when).date))

        # ---- behaviour
        self._evolve(activity)
        tx = self._transactions(t, month_start, days, activity, missed, churn_day, churning)
        ix = self._interactions(t, month_start, days, activity, churn_day, churning)
        ix = self._contact_interactions(ix, month_start, activity)
        status = self._credit_status(t, month_end) if write else None
        self._mature(t, month_start, staying=self.active & ~churning)

        who = np.flatnonzero(churning)
        if len(who):
            close = np.datetime64(month_start, "D") + churn_day[who].astype("timedelta64[D]")
            self.book.close_all(who, close)
            self.active[who] = False
            events.append(self._events(who, "churn", None, pd.to_datetime(close).date))
        if not write:
            return None
        events_frame = (
            pd.concat(events, ignore_index=True) if events else pd.DataFrame(columns=EVENT_COLUMNS)
        )
        return MonthRows(tx, ix, status, oracle, events_frame[list(EVENT_COLUMNS)])

    def _events(self, who: np.ndarray, outcome: str, product: str | None, dates) -> pd.DataFrame:
        """Realised outcomes of customers at positions ``who`` (the oracle's ``events`` rows)."""
        return pd.DataFrame(
            {
                "customer_id": self.customer_ids[who],
                "outcome": outcome,
                "product": product,
                "event_date": dates,
            },
            columns=EVENT_COLUMNS,
        )

    # -------------------------------------------------------------------------------- campaigns
    def _contact_uplift(self, t: int, xsell_h: np.ndarray) -> np.ndarray:
        """Take-up hazards raised for the products customers were contacted about (no draws)."""
        c = self.contacts
        live = (c.first_month <= t) & (t < c.first_month + hazards.CONTACT_EFFECT_MONTHS)
        if not live.any():
            return xsell_h
        rows, cols = c.position[live], c.product[live]
        raised = xsell_h.copy()
        raised[rows, cols] = hazards.uplifted(xsell_h[rows, cols], hazards.CONTACT_UPLIFT)
        return raised

    def _contact_interactions(self, ix: pd.DataFrame, month_start, activity) -> pd.DataFrame:
        """A ``campaign_contact`` row per contact dated this month, for customers still here."""
        c = self.contacts
        start = np.datetime64(month_start, "s")
        end = np.datetime64(month_start + pd.DateOffset(months=1), "s")
        now = (c.when >= start) & (c.when < end) & (activity[c.position] > 0)
        if not now.any():
            return ix
        products = np.array([vocabulary.PRODUCTS.index(p) for p in XS], dtype=np.int64)
        rows = pd.DataFrame(
            {
                "_customer": c.position[now],
                "channel": ICH_CODE["email"],
                "kind": IX_CODE["campaign_contact"],
                "product": products[c.product[now]],
                "complaint_category": -1,
                "resolution_days": np.nan,
                "satisfaction_score": 0,
                "ts": (c.when[now] + np.timedelta64(10, "h")).astype("datetime64[us]"),
            }
        )
        return pd.concat([ix, rows[ix.columns]], ignore_index=True)

    # ---------------------------------------------------------------------------------- oracle
    def _oracle_rows(self, month_start, churn_h, miss_h, xsell_h, has_credit) -> pd.DataFrame:
        snapshot = month_start.date()
        active = np.flatnonzero(self.active)
        frames = [
            pd.DataFrame(
                {
                    "customer_id": self.customer_ids[active],
                    "outcome": "churn",
                    "product": None,
                    "probability": hazards.within(churn_h[active], hazards.CHURN_HORIZON),
                }
            )
        ]
        eligible = np.flatnonzero(has_credit & (self.arrears < 3))
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": self.customer_ids[eligible],
                    "outcome": "default",
                    "product": None,
                    "probability": hazards.default_within(
                        self.arrears[eligible], miss_h[eligible], hazards.DEFAULT_HORIZON
                    ),
                }
            )
        )
        holds = self.book.holds
        for j, product in enumerate(XS):
            who = active[~holds[active, PRODUCT_INDEX[product]]]
            frames.append(
                pd.DataFrame(
                    {
                        "customer_id": self.customer_ids[who],
                        "outcome": "cross_sell",
                        "product": product,
                        "probability": hazards.within(xsell_h[who, j], hazards.CROSS_SELL_HORIZON),
                    }
                )
            )
        oracle = pd.concat(frames, ignore_index=True)
        oracle.insert(1, "snapshot", snapshot)
        return oracle

    # --------------------------------------------------------------------------------- arrears
    def _arrears_step(self, t: int, miss_h, has_credit, write: bool) -> np.ndarray:
        """Advance the arrears chain; returns who missed this month's payments."""
        roll1, roll2 = hazards.roll_hazards(miss_h)
        u = self.rng.random(self.n)
        k = self.arrears
        live = has_credit & (k < 3)
        p = np.select([k == 0, k == 1, k == 2], [miss_h, roll1, roll2], 0.0)
        missed = live & (u < p)
        new = np.where(missed, k + 1, np.where(live, 0, k))
        if not write:
            new = np.minimum(new, 2)  # nobody defaults during burn-in
        self.arrears = new
        self.h.missed_month[missed] = t
        return missed

    def _open_product(self, who: np.ndarray, product: str, t: int, when: np.ndarray) -> None:
        rng, income = self.rng, self.traits.income[who]
        if product == "credit_card":
            limit = np.round(income * 2.5, -2)
            self.book.open(who, product, when, limit=limit)
            self.bal.card_limit[who], self.bal.card_owed[who] = limit, 0.0
        elif product in ("personal_loan", "mortgage"):
            self._open_credit(who, product, t, opened_at=when, new=True)
        elif product in ("term_deposit", "wealth_management"):
            self._open_maturing(who, product, when, t, rng.choice([6, 12, 24], len(who)))
        else:
            self.book.open(who, product, when)
        if product in vocabulary.CREDIT_PRODUCTS:
            self.h.credit_opened_month[who, vocabulary.CREDIT_PRODUCTS.index(product)] = t

    # ------------------------------------------------------------------------------- behaviour
    def _evolve(self, activity: np.ndarray) -> None:
        rng, n = self.rng, self.n
        self.engagement = 0.85 * self.engagement + 0.527 * rng.normal(0, 1, n)
        self.intent = 0.7 * self.intent + 0.714 * rng.normal(0, 0.7, self.intent.shape)
        leaves = self.salary_here & (rng.random(n) < hazards.sigmoid(-5.6 - 0.9 * self.engagement))
        returns = ~self.salary_here & self.traits.salaried & (rng.random(n) < 0.01)
        self.salary_here = (self.salary_here & ~leaves) | returns

    def _transactions(self, t, month_start, days, activity, missed, churn_day, churning):
        """The month's postings: inflows, repayments, card spending, spending from the current
        account, the bank's charges, then the savings moves (each step sees what the steps
        before it posted). The random draws follow that order: a bank is its seed."""
        month = _Postings(
            self.rng,
            self.traits,
            accounts=self._accounts_at_start,
            span=np.where(churning, churn_day, days) * DAY,  # seconds in which activity happens
        )
        counts = self._posting_counts(month, activity)
        salary = self.salary_here & (activity > 0)
        inflow = self._inflows(month, t, salary, counts["in"], activity)
        paying = ~missed & (self.arrears < 3) & (activity > 0)
        instalment = self._repayments(month, paying)
        self._card_spending(month, t, counts["card"])
        self._current_spending(month, inflow, instalment, counts)
        self._charges(month, activity)
        self._savings_moves(month, days, activity)
        frame = self._post_rows(month.parts, month_start)
        self._update_history_tx(month.parts, salary)
        return frame

    def _posting_counts(self, month: _Postings, activity) -> dict[str, np.ndarray]:
        """How many of each customer-initiated posting every customer makes this month."""
        rng, tr, e = self.rng, self.traits, self.engagement
        has_card = month.holds("credit_card") & (self.arrears == 0)
        spend = rng.poisson(7 * np.exp(0.7 * e) * (tr.income / 5_000) ** 0.2 * activity)
        card = np.where(has_card, rng.binomial(spend, 0.6), 0)
        return {
            "card": card,
            "debit": spend - card,
            "atm": rng.poisson(2.2 * (1.2 - tr.digital) * np.exp(0.2 * e) * activity),
            "bill": rng.poisson(2.0 * np.exp(0.15 * e) * activity),
            "out": rng.poisson(1.2 * np.exp(0.6 * e) * activity),
            "in": rng.poisson((0.4 + 1.6 * ~self.salary_here) * activity),
        }

    def _inflows(self, month: _Postings, t, salary, n_in, activity) -> np.ndarray:
        """Salaries and transfers in, to the current account; returns each customer's inflow."""
        rng, tr, span = self.rng, self.traits, month.span
        cur = month.account("current")
        who = np.flatnonzero(salary)
        pay = np.round(tr.income[who] * rng.normal(1, 0.02, len(who)), 2)
        if shock := self.cfg.shocked(t):
            pay = np.round(pay * (1 - shock.salary_cut), 2)
        offset = np.minimum(rng.integers(0, 3 * DAY, len(who)), span[who] - 60)
        month.post(who, cur[who], "salary", pay, offset, month.fixed(who, "online"))
        inflow = np.zeros(self.n)
        inflow[who] = pay
        transfer_share = np.where(self.salary_here, 0.15, np.where(tr.salaried, 0.5, 0.95))
        c, off, w = month.spread(n_in)
        total_in = tr.income * transfer_share * rng.lognormal(0, 0.3, self.n) * activity
        amount = np.round(total_in[c] * w / np.bincount(c, w, self.n)[c], 2)
        month.post(c, cur[c], "transfer_in", amount, off, month.digital_channel(c))
        return inflow + np.bincount(c, amount, self.n)

    def _repayments(self, month: _Postings, paying) -> np.ndarray:
        """Loan instalments and card repayments, unless this month's payments were missed;
        returns what each customer paid."""
        b, n = self.bal, self.n
        cur, card = month.account("current"), month.account("credit_card")
        repay_off = np.minimum(self.rng.integers(3 * DAY, 8 * DAY, n), month.span - 60)
        instalment = np.zeros(n)
        for product, outstanding, inst in (
            ("personal_loan", b.loan, b.loan_instalment),
            ("mortgage", b.mortgage, b.mortgage_instalment),
        ):
            who = np.flatnonzero(paying & month.holds(product) & (outstanding > 0))
            amount = np.minimum(inst[who], outstanding[who])
            online = month.fixed(who, "online")
            month.post(who, cur[who], "loan_repayment", -amount, repay_off[who], online)
            outstanding[who] = np.round(outstanding[who] - amount, 2)
            instalment[who] += amount
        who = np.flatnonzero(paying & month.holds("credit_card") & (b.card_owed > 0))
        repay = np.round(
            np.maximum(b.card_owed[who] * self.pay_ratio[who], np.minimum(b.card_owed[who], 50)), 2
        )
        online = month.fixed(who, "online")
        month.post(who, cur[who], "loan_repayment", -repay, repay_off[who], online)
        month.post(who, card[who], "loan_repayment", repay, repay_off[who], online)
        instalment[who] += repay
        return instalment

    def _card_spending(self, month: _Postings, t, n_card) -> None:
        """Spending on the credit card, capped by the available limit."""
        rng, tr, b, n = self.rng, self.traits, self.bal, self.n
        c, off, w = month.spread(n_card, 0.9)
        wanted = tr.income * 0.3 * np.exp(-0.3 * tr.health) * rng.lognormal(0, 0.4, n)
        if shock := self.cfg.shocked(t):
            wanted = wanted * (1 + shock.card_spend_rise)
        room = np.maximum(b.card_limit - b.card_owed, 0)
        total = np.minimum(wanted, room)
        # floor to cents so rounding can never push a card past its limit
        amount = np.floor(total[c] * w / np.bincount(c, w, n)[c] * 100) / 100
        mcc = rng.integers(0, len(vocabulary.MERCHANT_CATEGORIES), len(c))
        channel = np.where(
            rng.random(len(c)) < tr.digital[c] * 0.6, CH_CODE["online"], CH_CODE["pos"]
        )
        month.post(c, month.account("credit_card")[c], "card_spend", -amount, off, channel, mcc)

    def _current_spending(self, month: _Postings, inflow, instalment, counts) -> None:
        """Discretionary spending from the current account, sized to the income that came in."""
        rng, tr, b, n = self.rng, self.traits, self.bal, self.n
        cur = month.account("current")
        ratio = np.clip(0.93 - 0.07 * tr.health + 0.1 * rng.normal(0, 1, n), 0.4, 1.4)
        budget = np.maximum(inflow * ratio - instalment, 0)
        budget = np.minimum(
            budget, np.maximum(b.current + inflow - instalment + b.overdraft_needed * 0.8, 0)
        )
        kinds = [
            ("card_spend", counts["debit"], 0.6),
            ("atm", counts["atm"], 1.0),
            ("bill_payment", counts["bill"], 1.2),
            ("transfer_out", counts["out"], 2.0),
        ]
        drawn = []
        for kind, n_kind, weight in kinds:
            c, off, w = month.spread(n_kind)
            drawn.append((kind, c, off, w * weight))
        weight_sum = sum(np.bincount(c, w, n) for _, c, _, w in drawn)
        for kind, c, off, w in drawn:
            amount = np.round(budget[c] * w / weight_sum[c], 2)
            if kind == "card_spend":
                channel = np.where(
                    rng.random(len(c)) < tr.digital[c] * 0.5, CH_CODE["online"], CH_CODE["pos"]
                )
                mcc = rng.integers(0, len(vocabulary.MERCHANT_CATEGORIES), len(c))
            elif kind == "atm":
                channel, mcc = month.fixed(c, "atm"), None
            else:
                channel, mcc = month.digital_channel(c), None
            month.post(c, cur[c], kind, -amount, off, channel, mcc)

    def _charges(self, month: _Postings, activity) -> None:
        """Fees, and penalty interest charged to the current account once a payment is overdue."""
        rng, b = self.rng, self.bal
        cur = month.account("current")
        c, off, _ = month.spread(rng.poisson((0.1 + 0.8 * (b.current < 0)) * activity))
        fee = -np.round(rng.uniform(5, 30, len(c)), 2)
        month.post(c, cur[c], "fee", fee, off, month.fixed(c, "online"))
        who = np.flatnonzero((self.arrears > 0) & (activity > 0))
        overdue = b.loan_instalment[who] + b.mortgage_instalment[who] + 0.05 * b.card_owed[who]
        month.post(
            who,
            cur[who],
            "penalty_interest",
            -np.round(np.maximum(overdue * 0.02 * self.arrears[who], 5.0), 2),
            np.minimum(rng.integers(20 * DAY, 27 * DAY, len(who)), month.span[who] - 60),
            month.fixed(who, "online"),
        )

    def _savings_moves(self, month: _Postings, days, activity) -> None:
        """Savings: sweep idle money in, cover overdrafts out, monthly interest."""
        tr, b = self.traits, self.bal
        cur, sav = month.account("current"), month.account("savings")
        has_sav = month.holds("savings") & (activity > 0)
        projected = b.current + self._sum_current(month.parts, cur, self.n)
        sweep = np.where(has_sav, np.maximum(projected - 3 * tr.income, 0) * 0.5, 0)
        cover = np.where(
            has_sav & (projected < 0), np.minimum(b.savings, -projected + tr.income * 0.3), 0
        )
        late = np.minimum(month.span, days * DAY) - DAY
        for amount, day_from, kind_cur, kind_sav in (
            (sweep, 24, "transfer_out", "transfer_in"),
            (cover, 25, "transfer_in", "transfer_out"),
        ):
            who = np.flatnonzero(amount > 0.005)
            value = np.round(amount[who], 2)
            off = np.minimum(day_from * DAY, late[who])
            ch = month.digital_channel(who)
            month.post(
                who, cur[who], kind_cur, -value if kind_cur == "transfer_out" else value, off, ch
            )
            month.post(
                who, sav[who], kind_sav, value if kind_sav == "transfer_in" else -value, off, ch
            )
        who = np.flatnonzero(has_sav & (b.savings > 0))
        month.post(
            who,
            sav[who],
            "interest",
            np.round(b.savings[who] * 0.002, 2),
            np.minimum(late[who], (days - 1) * DAY),
            month.fixed(who, "online"),
        )

    @staticmethod
    def _sum_current(parts, cur, n) -> np.ndarray:
        total = np.zeros(n)
        for cust, account, _, amount, *_ in parts:
            on_current = account == cur[cust]
            total += np.bincount(cust[on_current], amount[on_current], n)
        return total

    def _post_rows(self, parts, month_start) -> pd.DataFrame:
        """Order the month's postings per account and compute running balances."""
        columns = (np.concatenate(x) for x in zip(*parts, strict=True))
        cust, account, kind, amount, offset, channel, mcc = columns
        b, book = self.bal, self._accounts_at_start
        # opening balance of each posted account, by what kind of account it is
        opening = np.select(
            [
                account == book[cust, PRODUCT_INDEX["current"]],
                account == book[cust, PRODUCT_INDEX["savings"]],
            ],
            [b.current[cust], b.savings[cust]],
            -b.card_owed[cust],
        )
        order = stable_order(account, offset)
        cust, account, kind, amount, offset = (
            x[order] for x in (cust, account, kind, amount, offset)
        )
        channel, mcc, opening = channel[order], mcc[order], opening[order]
        running = np.cumsum(amount)
        first = np.r_[True, account[1:] != account[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(account)), 0))
        before = running[group_start] - amount[group_start]
        balance = np.round(opening + running - before, 2)
        # month-end balances back into state
        last = np.r_[first[1:], True]
        for index, column in (
            (PRODUCT_INDEX["current"], "current"),
            (PRODUCT_INDEX["savings"], "savings"),
        ):
            on = last & (account == book[cust, index])
            getattr(b, column)[cust[on]] = balance[on]
        on = last & (account == book[cust, PRODUCT_INDEX["credit_card"]])
        b.card_owed[cust[on]] = -balance[on]
        on_current = account == book[cust, PRODUCT_INDEX["current"]]
        deepest = np.full(self.n, np.inf)
        np.minimum.at(deepest, cust[on_current], balance[on_current])
        b.overdraft_needed = np.maximum(b.overdraft_needed, -deepest)
        # Returned in time order, accounts in order within a second: what a stable sort by
        # time makes of these rows, which the writer's stable sort then finds done.
        by_time = stable_order(offset, account)
        account, kind, amount, offset, balance, channel, mcc, cust = (
            x[by_time] for x in (account, kind, amount, offset, balance, channel, mcc, cust)
        )
        ts = np.datetime64(month_start, "s") + offset.astype("timedelta64[s]")
        return pd.DataFrame(
            {
                "account_id": account,
                "ts": ts.astype("datetime64[us]"),
                "amount": np.round(amount, 2),
                "balance_after": balance,
                "type": pd.Categorical.from_codes(kind, vocabulary.TRANSACTION_TYPES),
                "channel": pd.Categorical.from_codes(channel, vocabulary.TRANSACTION_CHANNELS),
                "merchant_category": pd.Categorical.from_codes(mcc, vocabulary.MERCHANT_CATEGORIES),
                "_customer": cust,
            }
        )

    def _update_history_tx(self, parts, salary) -> None:
        initiated = {TX_CODE[t] for t in vocabulary.CUSTOMER_INITIATED_TYPES} - {TX_CODE["salary"]}
        count = np.zeros(self.n)
        for cust, _, kind, *_ in parts:
            if kind.size and kind[0] in initiated:
                count += np.bincount(cust, minlength=self.n)
        self.h.tx = np.column_stack([count, self.h.tx[:, :-1]])
        self.h.months_since_salary = np.where(
            salary, 0, np.minimum(self.h.months_since_salary + 1, NEVER)
        )

    def _interactions(self, t, month_start, days, activity, churn_day, churning) -> pd.DataFrame:
        rng, n, tr, h = self.rng, self.n, self.traits, self.h
        e = self.engagement
        span = np.where(churning, churn_day, days) * DAY
        rows = []

        def add(cust, kind, channel, product=None, offset=None, **extra):
            offset = (
                (rng.random(len(cust)) * span[cust]).astype(np.int64) if offset is None else offset
            )
            rows.append(
                pd.DataFrame(
                    {
                        "_customer": cust,
                        "offset": offset,
                        "channel": channel if np.ndim(channel) else np.full(len(cust), channel),
                        "kind": IX_CODE[kind],
                        "product": -1 if product is None else product,
                        "complaint_category": extra.get("category", -1),
                        "resolution_days": extra.get("resolution", np.nan),
                        "satisfaction_score": extra.get("score", 0),
                    }
                )
            )

        def repeat(counts):
            return np.repeat(np.arange(n), counts)

        add(
            repeat(rng.poisson(10 * tr.digital * np.exp(0.6 * e) * activity)),
            "app_login",
            ICH_CODE["mobile"],
        )
        add(
            repeat(rng.poisson(0.35 * (1.1 - tr.digital) * activity)),
            "branch_visit",
            ICH_CODE["branch"],
        )
        add(
            repeat(rng.poisson(np.where(tr.has_manager, 0.5, 0.03) * activity)),
            "manager_call",
            ICH_CODE["phone"],
        )
        pending = self.observe_pending(t)
        add(
            repeat(rng.poisson((0.12 + 0.3 * pending) * activity)), "call_centre", ICH_CODE["phone"]
        )

        # complaints, with their (future) resolution
        c = repeat(rng.poisson(0.035 * np.exp(-0.6 * e) * activity))
        resolution = np.round(rng.lognormal(1.8, 0.8, len(c)), 1)
        resolution[rng.random(len(c)) < 0.12] = np.nan
        off = (rng.random(len(c)) * span[c]).astype(np.int64)
        add(
            c,
            "complaint",
            np.where(rng.random(len(c)) < tr.digital[c], ICH_CODE["online"], ICH_CODE["phone"]),
            offset=off,
            category=rng.integers(0, len(vocabulary.COMPLAINT_CATEGORIES), len(c)),
            resolution=resolution,
        )
        created = np.datetime64(month_start, "s") + off.astype("timedelta64[s]")
        resolved = created + np.nan_to_num(resolution * DAY, nan=1e10).astype("timedelta64[s]")
        h.complaint_customer.append(c)
        h.complaint_resolved_at.append(resolved)
        h.complaints = np.column_stack([np.bincount(c, minlength=n), h.complaints[:, :-1]])

        # product interest: page views and campaign responses
        views = rng.poisson(
            0.35 * tr.digital[:, None] * np.exp(tr.affinity + self.intent) * activity[:, None]
        )
        for j, product in enumerate(XS):
            add(
                repeat(views[:, j]),
                "product_page_view",
                ICH_CODE["mobile"],
                product=vocabulary.PRODUCTS.index(product),
            )
        contacted = np.flatnonzero(self.consent & (activity > 0) & (rng.random(n) < 0.05))
        offer = rng.integers(0, len(XS), len(contacted))
        off = (rng.random(len(contacted)) * span[contacted] * 0.7).astype(np.int64)
        add(
            contacted,
            "campaign_contact",
            ICH_CODE["email"],
            product=np.array([vocabulary.PRODUCTS.index(XS[j]) for j in offer], dtype=np.int64),
            offset=off,
        )
        logit = -2.2 + tr.affinity[contacted, offer] + self.intent[contacted, offer]
        responded = rng.random(len(contacted)) < hazards.sigmoid(logit)
        responses = np.zeros((n, len(XS)))
        responses[contacted[responded], offer[responded]] = 1
        add(
            contacted[responded],
            "campaign_response",
            ICH_CODE["online"],
            product=np.array(
                [vocabulary.PRODUCTS.index(XS[j]) for j in offer[responded]], dtype=np.int64
            ),
            offset=np.minimum(off[responded] + DAY, span[contacted[responded]] - 1),
        )
        h.views = np.concatenate([views[:, :, None], h.views[:, :, :-1]], axis=2)
        h.responses = np.concatenate([responses[:, :, None], h.responses[:, :, :-1]], axis=2)

        surveyed = np.flatnonzero((activity > 0) & (rng.random(n) < 0.06))
        score = np.clip(
            np.round(
                3.6
                + 0.8 * e[surveyed]
                - 1.0 * pending[surveyed]
                + rng.normal(0, 0.7, len(surveyed))
            ),
            1,
            5,
        ).astype(np.int64)
        add(surveyed, "satisfaction_survey", ICH_CODE["email"], score=score)
        h.last_satisfaction[surveyed] = score

        frame = pd.concat(rows, ignore_index=True)
        frame["ts"] = (
            np.datetime64(month_start, "s")
            + frame.pop("offset").to_numpy().astype("timedelta64[s]")
        ).astype("datetime64[us]")
        return frame

    def observe_pending(self, t: int) -> np.ndarray:
        if not self.h.complaint_customer:
            return np.zeros(self.n)
        start = np.datetime64(self.cfg.month_start(t), "s")
        cust = np.concatenate(self.h.complaint_customer)
        resolved = np.concatenate(self.h.complaint_resolved_at)
        return np.bincount(cust[resolved >= start], minlength=self.n).astype(float)

    def _credit_status(self, t: int, month_end: pd.Timestamp) -> pd.DataFrame:
        book, b = self.book.account_of, self.bal
        dpd = np.where(
            self.arrears < 3, 30 * self.arrears, 90 + 30 * np.maximum(t - self.default_month, 0)
        )
        month_end_ns = np.datetime64(month_end, "ns")
        frames = []
        for product, balance in (
            ("credit_card", b.card_owed),
            ("personal_loan", b.loan),
            ("mortgage", b.mortgage),
        ):
            who = np.flatnonzero(book[:, PRODUCT_INDEX[product]] > 0)
            frames.append(
                pd.DataFrame(
                    {
                        "account_id": book[who, PRODUCT_INDEX[product]],
                        "month": month_end.date(),
                        "balance": np.round(np.maximum(balance[who], 0), 2),
                        "days_past_due": dpd[who].astype(np.int64),
                    }
                )
            )
        status = pd.concat(frames, ignore_index=True)
        # only accounts opened by the month end
        opened = self.book.opened_before(status["account_id"].to_numpy(), month_end_ns)
        return status[opened].reset_index(drop=True)

    def _mature(self, t: int, month_start: pd.Timestamp, staying: np.ndarray) -> None:
        """Close matured deposits (half roll over), repaid loans and written-off credit.

        Only customers ``staying`` this month: a churner's accounts all close on the churn date.
        """
        rng = self.rng
        for product, maturity in (
            ("term_deposit", self.td_maturity),
            ("wealth_management", self.wm_maturity),
        ):
            due = np.flatnonzero(
                (maturity == t) & self.book.holds[:, PRODUCT_INDEX[product]] & staying
            )
            if not len(due):
                continue
            when = self.book.maturity_of(self.book.account_of[due, PRODUCT_INDEX[product]])
            self.book.close(due, product, when)
            maturity[due] = NEVER
            rolls = rng.random(len(due)) < 0.5
            if rolls.any():
                self._open_maturing(
                    due[rolls], product, when[rolls], t, rng.choice([6, 12, 24], rolls.sum())
                )
            self.h.matured_month[due[~rolls]] = t
        for product, outstanding in (
            ("personal_loan", self.bal.loan),
            ("mortgage", self.bal.mortgage),
        ):
            done = np.flatnonzero(
                self.book.holds[:, PRODUCT_INDEX[product]]
                & (outstanding <= 0.005)
                & (self.arrears == 0)
            )
            if len(done):
                end = np.datetime64(month_start + pd.Timedelta(days=27), "D")
                self.book.close(done, product, np.full(len(done), end))
        written_off = np.flatnonzero(self.default_month == t - WRITE_OFF_MONTHS)
        if len(written_off):
            end = np.datetime64(month_start + pd.Timedelta(days=month_start.days_in_month - 1), "D")
            for product in vocabulary.CREDIT_PRODUCTS:
                self.book.close(written_off, product, np.full(len(written_off), end))

    def settle_overdraft_limits(self) -> None:
        """Current-account limits cover the deepest overdraft each customer used, except for a
        share of financially weak customers who went beyond what was arranged (an unarranged
        overdraft: real banks see them, and they signal risk). Drawn after the simulation, so the
        months simulated do not depend on it."""
        ids = self.current_account_ids
        limit = np.ceil(self.bal.overdraft_needed / 100) * 100
        weak = self.traits.health < -0.5
        unarranged = weak & (self.rng.random(self.n) < 0.4) & (limit > self.traits.income)
        limit[unarranged] = np.floor(limit[unarranged] * 0.6 / 100) * 100
        self.book.raise_limit(ids, limit)
