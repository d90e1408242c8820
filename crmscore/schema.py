"""The raw data contract: the five tables every bank feeds crmscore.

A dataset is a folder with one sub-folder (or file) per table, in Parquet. This module is the single
source of truth for column names, types, allowed categories and ranges; validation, the synthetic
bank, the README table and the feature SQL all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PRODUCTS: tuple[str, ...] = (
    "current",
    "savings",
    "term_deposit",
    "credit_card",
    "personal_loan",
    "mortgage",
    "wealth_management",
    "insurance",
)
#: Products a customer can be offered: the cross-sell targets.
CROSS_SELL_PRODUCTS: tuple[str, ...] = (
    "credit_card",
    "wealth_management",
    "term_deposit",
    "personal_loan",
    "mortgage",
    "insurance",
)
#: Products that carry a repayment obligation and so can default.
CREDIT_PRODUCTS: tuple[str, ...] = ("credit_card", "personal_loan", "mortgage")
#: Products whose principal matures on a known date.
MATURING_PRODUCTS: tuple[str, ...] = ("term_deposit", "wealth_management")
#: Accounts allowed to carry a negative balance, down to minus their limit (overdraft, card debt).
NEGATIVE_BALANCE_PRODUCTS: tuple[str, ...] = ("current", "credit_card")

TRANSACTION_TYPES = (
    "salary",
    "card_spend",
    "transfer_in",
    "transfer_out",
    "atm",
    "bill_payment",
    "loan_repayment",
    "interest",
    "fee",
)
#: Transactions the customer initiates (interest and fees are the bank's doing).
CUSTOMER_INITIATED_TYPES = tuple(t for t in TRANSACTION_TYPES if t not in ("interest", "fee"))
TRANSACTION_CHANNELS = ("branch", "atm", "mobile", "online", "pos")
MERCHANT_CATEGORIES = (
    "groceries",
    "dining",
    "travel",
    "fuel",
    "utilities",
    "online_retail",
    "health",
    "entertainment",
    "education",
)
INTERACTION_KINDS = (
    "branch_visit",
    "manager_call",
    "call_centre",
    "complaint",
    "campaign_contact",
    "campaign_response",
    "app_login",
    "product_page_view",
    "satisfaction_survey",
)
INTERACTION_CHANNELS = ("branch", "phone", "mobile", "online", "email")
COMPLAINT_CATEGORIES = ("fees", "service", "delay", "card", "loan_approval", "digital", "rates")
GENDERS = ("F", "M", "X")
OCCUPATIONS = (
    "employee",
    "civil_servant",
    "self_employed",
    "business_owner",
    "farmer",
    "student",
    "retired",
    "unemployed",
)
INCOME_BANDS = ("<2k", "2k-5k", "5k-10k", "10k-20k", ">20k")
SEGMENTS = ("mass", "emerging_affluent", "affluent", "private")
REGIONS = ("north", "south", "east", "west", "central")


@dataclass(frozen=True)
class Column:
    """One column of a raw table and the rules its values obey."""

    name: str
    dtype: str  # one of: string, int64, float64, bool, date, timestamp
    description: str
    nullable: bool = False
    categories: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None


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

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


CUSTOMERS = Table(
    name="customers",
    description="One row per customer, across all of their accounts (the 'golden record').",
    columns=(
        Column("customer_id", "int64", "Customer identifier, unique across the bank.", min=1),
        Column("birth_date", "date", "Date of birth."),
        Column("gender", "string", "Gender as recorded.", categories=GENDERS),
        Column("region", "string", "Region of the home branch.", categories=REGIONS),
        Column("branch_id", "int64", "Home branch.", min=1),
        Column("occupation", "string", "Occupation.", categories=OCCUPATIONS),
        Column("income_band", "string", "Declared monthly income band.", categories=INCOME_BANDS),
        Column("segment", "string", "Commercial segment by assets.", categories=SEGMENTS),
        Column("join_date", "date", "First day as a customer."),
        Column("manager_id", "int64", "Assigned customer manager.", nullable=True, min=1),
        Column("marketing_consent", "bool", "Customer agreed to marketing contact."),
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
        Column("product", "string", "Product type.", categories=PRODUCTS),
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
        Column("type", "string", "Transaction type.", categories=TRANSACTION_TYPES),
        Column("channel", "string", "Where it was made.", categories=TRANSACTION_CHANNELS),
        Column(
            "merchant_category",
            "string",
            "Merchant category for card spend; empty otherwise.",
            nullable=True,
            categories=MERCHANT_CATEGORIES,
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
        Column("channel", "string", "Channel.", categories=INTERACTION_CHANNELS),
        Column("kind", "string", "What happened.", categories=INTERACTION_KINDS),
        Column(
            "product", "string", "Product concerned, if any.", nullable=True, categories=PRODUCTS
        ),
        Column(
            "complaint_category",
            "string",
            "Complaint category (complaints only).",
            nullable=True,
            categories=COMPLAINT_CATEGORIES,
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
)

CREDIT_STATUS = Table(
    name="credit_status",
    description="Month-end status of every credit account (cards, loans, mortgages).",
    columns=(
        Column("account_id", "int64", "Credit account (accounts.account_id).", min=1),
        Column("month", "date", "Month end the status refers to."),
        Column("balance", "float64", "Outstanding amount owed.", min=0),
        Column("days_past_due", "int64", "Days past due at month end.", min=0),
    ),
    primary_key=("account_id", "month"),
    foreign_keys=(ForeignKey("account_id", "accounts", "account_id"),),
    event_time=("month",),
)

TABLES: dict[str, Table] = {
    t.name: t for t in (CUSTOMERS, ACCOUNTS, TRANSACTIONS, INTERACTIONS, CREDIT_STATUS)
}
#: Order in which tables must be read so references resolve.
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)
