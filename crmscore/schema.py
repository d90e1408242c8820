"""The raw data contract: the tables a bank feeds crmscore, their columns, types and rules.

A dataset is a folder with one sub-folder (or file) per table, in Parquet. This module is the single
source of truth for table and column names, types, ranges and which tables and columns a dataset may
lack; validation, ingest, the synthetic bank, the README table and the feature SQL all read it from
here. The *values* of categorical columns are the bank's own: a column names its vocabulary, and the
dataset's ``bank.yaml`` (:mod:`crmscore.contract`) lists the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    """One column of a raw table and the rules its values obey."""

    name: str
    dtype: str  # one of: string, int64, float64, bool, date, timestamp
    description: str
    nullable: bool = False
    #: The contract vocabulary (a :class:`~crmscore.contract.BankContract` field) its values come
    #: from, e.g. ``"regions"``; None for free values.
    vocabulary: str | None = None
    min: float | None = None
    max: float | None = None
    #: Real extracts often lack it: the column may be absent (features needing it are then
    #: missing, never made up). Optional columns are nullable.
    optional: bool = False
    #: Every value is the last day of its month (month-end statuses).
    month_end: bool = False

    @property
    def may_be_null(self) -> bool:
        return self.nullable or self.optional


@dataclass(frozen=True)
class ForeignKey:
    """``column`` of this table must exist as ``ref_column`` of table ``ref_table``."""

    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    """A raw table: its columns, primary key, references and time ordering rules."""

    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    #: Pairs (earlier, later): on every row ``earlier <= later`` when both are present.
    time_order: tuple[tuple[str, str], ...] = ()
    #: Columns holding dates or times that must not lie after the dataset's as-of date.
    event_time: tuple[str, ...] = field(default=())
    #: Some banks do not have it (no interaction log, no monthly arrears file): the table may be
    #: absent, and the features built from it are missing.
    optional: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if not c.optional]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


CUSTOMERS = Table(
    name="customers",
    description="One row per customer, across all of their accounts (the 'golden record').",
    columns=(
        Column("customer_id", "int64", "Customer identifier, unique across the bank.", min=1),
        Column("birth_date", "date", "Date of birth."),
        Column("gender", "string", "Gender as recorded.", vocabulary="genders", optional=True),
        Column("region", "string", "Region of the home branch.", vocabulary="regions"),
        Column("branch_id", "int64", "Home branch.", min=1, optional=True),
        Column("occupation", "string", "Occupation.", vocabulary="occupations", optional=True),
        Column(
            "income_band",
            "string",
            "Declared monthly income band.",
            vocabulary="income_bands",
            optional=True,
        ),
        Column(
            "segment",
            "string",
            "Commercial segment by assets.",
            vocabulary="segments",
            optional=True,
        ),
        Column("join_date", "date", "First day as a customer."),
        Column("manager_id", "int64", "Assigned customer manager.", min=1, optional=True),
        Column(
            "marketing_consent",
            "bool",
            "Customer agreed to marketing contact (empty = unknown, treated as no).",
            optional=True,
        ),
    ),
    primary_key=("customer_id",),
    time_order=(("birth_date", "join_date"),),
    event_time=("join_date",),
)

ACCOUNTS = Table(
    name="accounts",
    description="Accounts and contracts; a customer holds several. Scores aggregate across them.",
    columns=(
        Column("account_id", "int64", "Account identifier.", min=1),
        Column("customer_id", "int64", "Owner (customers.customer_id).", min=1),
        Column(
            "product",
            "string",
            "Product (the bank's products in bank.yaml).",
            vocabulary="products",
        ),
        Column("open_date", "date", "Date the account was opened."),
        Column("close_date", "date", "Date closed; empty while open.", nullable=True),
        Column(
            "maturity_date",
            "date",
            "Contractual maturity (term deposits, wealth products, loans); empty otherwise.",
            nullable=True,
        ),
        Column(
            "limit_amount",
            "float64",
            "Credit limit, overdraft limit or principal; 0 when not applicable.",
            min=0,
        ),
    ),
    primary_key=("account_id",),
    foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
    time_order=(("open_date", "close_date"), ("open_date", "maturity_date")),
    event_time=("open_date", "close_date"),
)

TRANSACTIONS = Table(
    name="transactions",
    description="Every posted transaction on every account.",
    columns=(
        Column("transaction_id", "int64", "Transaction identifier.", min=1),
        Column("account_id", "int64", "Account posted to (accounts.account_id).", min=1),
        Column("ts", "timestamp", "Posting time."),
        Column("amount", "float64", "Signed amount: positive credits the account."),
        Column("balance_after", "float64", "Account balance after posting."),
        Column(
            "type",
            "string",
            "Transaction type (bank.yaml says what each means).",
            vocabulary="transaction_types",
        ),
        Column("channel", "string", "Where it was made.", vocabulary="channels", optional=True),
        Column(
            "merchant_category",
            "string",
            "Merchant category for card spend; empty otherwise.",
            vocabulary="merchant_categories",
            optional=True,
        ),
    ),
    primary_key=("transaction_id",),
    foreign_keys=(ForeignKey("account_id", "accounts", "account_id"),),
    event_time=("ts",),
)

INTERACTIONS = Table(
    name="interactions",
    description="Contacts between the bank and the customer on every channel.",
    columns=(
        Column("interaction_id", "int64", "Interaction identifier.", min=1),
        Column("customer_id", "int64", "Customer (customers.customer_id).", min=1),
        Column("ts", "timestamp", "When it happened."),
        Column("channel", "string", "Channel.", vocabulary="interaction_channels", optional=True),
        Column("kind", "string", "What happened.", vocabulary="interaction_kinds"),
        Column(
            "product", "string", "Product concerned, if any.", nullable=True, vocabulary="products"
        ),
        Column(
            "complaint_category",
            "string",
            "Complaint category (complaints only).",
            nullable=True,
            vocabulary="complaint_categories",
        ),
        Column(
            "resolution_days",
            "float64",
            "Days to resolve a complaint; empty while unresolved.",
            nullable=True,
            min=0,
        ),
        Column(
            "satisfaction_score",
            "int64",
            "Survey answer from 1 (bad) to 5 (excellent).",
            nullable=True,
            min=1,
            max=5,
        ),
    ),
    primary_key=("interaction_id",),
    foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
    event_time=("ts",),
    optional=True,
)

CREDIT_STATUS = Table(
    name="credit_status",
    description="Month-end status of every credit account (cards, loans, mortgages).",
    columns=(
        Column("account_id", "int64", "Credit account (accounts.account_id).", min=1),
        Column("month", "date", "Month end the status refers to.", month_end=True),
        Column("balance", "float64", "Outstanding amount owed.", min=0),
        Column("days_past_due", "int64", "Days past due at month end.", min=0),
    ),
    primary_key=("account_id", "month"),
    foreign_keys=(ForeignKey("account_id", "accounts", "account_id"),),
    event_time=("month",),
    optional=True,
)

OUTCOMES = Table(
    name="outcomes",
    description=(
        "The bank's own outcomes: events it recorded by its own definitions (a default, a "
        "campaign response: `happened` empty) or decided cases with their result (a loan "
        "application at its decision date and whether it went bad: `happened` true/false)."
    ),
    columns=(
        Column("outcome_id", "int64", "Outcome identifier.", min=1),
        Column("customer_id", "int64", "Customer (customers.customer_id).", min=1),
        Column(
            "account_id",
            "int64",
            "Account concerned (accounts.account_id), e.g. the defaulted loan.",
            min=1,
            optional=True,
        ),
        Column(
            "outcome",
            "string",
            "What happened: default, churn, take_up, or a name the bank chooses.",
        ),
        Column(
            "product",
            "string",
            "Product concerned (take-ups), if any.",
            vocabulary="products",
            optional=True,
        ),
        Column("date", "date", "When it happened; for a decided case, its decision date."),
        Column(
            "happened",
            "bool",
            "For decided cases: whether the outcome happened; empty for recorded events.",
            optional=True,
        ),
    ),
    primary_key=("outcome_id",),
    foreign_keys=(
        ForeignKey("customer_id", "customers", "customer_id"),
        ForeignKey("account_id", "accounts", "account_id"),
    ),
    event_time=("date",),
    optional=True,
)

TABLES: dict[str, Table] = {
    t.name: t for t in (CUSTOMERS, ACCOUNTS, TRANSACTIONS, INTERACTIONS, CREDIT_STATUS, OUTCOMES)
}
#: Order in which tables must be read so references resolve.
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)
