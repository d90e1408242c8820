"""The bank's own vocabulary: which values its categorical columns hold, and what each one means.

Category values belong to the bank, not to crmscore: one bank has regions ``north``..``central``,
another ``Praha`` and ``jižní Morava``; one calls a product ``mortgage``, another ``home_loan``. A
dataset declares its values in ``bank.yaml`` beside its tables (``raw_dir/bank.yaml``, written by
``crmscore ingest`` and ``crmscore generate``); without one, :data:`DEFAULT_CONTRACT` applies, the
synthetic bank's vocabulary. Validation, features, labels, tiers, targets and the generator all
read the declared values from here.

Where crmscore must know what a value *means* (which products are credit and can default, which
transaction type is a salary), the bank says so with a **kind** from a small closed list
(:class:`ProductKind`, :class:`TransactionKind`, :class:`ChannelKind`): features and rules are
written against kinds, the bank's names flow through untouched.

    regions: [north, south]               # any text
    segments: [mass, affluent]            # ordered, lowest assets first
    products:
      current: {kind: current}
      home_loan: {kind: mortgage, cross_sell: true, margin: 1500}
    transaction_types: {SAL: salary, POS: card_spend, PEN: penalty}
    channels: {branch: branch, app: digital}
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from stat import S_ISREG
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

#: The file name of a dataset's contract, beside its tables.
CONTRACT_FILE = "bank.yaml"


class ProductKind(StrEnum):
    """What a product is, as far as scoring is concerned."""

    current = "current"  # transactional account; may be overdrawn down to its limit
    savings = "savings"  # deposit account; balance >= 0
    term_deposit = "term_deposit"  # fixed-term deposit: principal held until maturity
    investment = "investment"  # wealth/investment product: principal held until maturity
    card = "card"  # revolving credit; balance down to minus its limit
    loan = "loan"  # instalment credit (consumer, personal, car loans)
    mortgage = "mortgage"  # instalment credit secured on a home
    insurance = "insurance"
    other = "other"


#: Kinds whose balances are the customer's money (the deposit balance, the customer's value).
DEPOSIT_KINDS = frozenset(
    {ProductKind.current, ProductKind.savings, ProductKind.term_deposit, ProductKind.investment}
)
#: Deposit kinds whose balance comes from postings (the others count their principal while held).
POSTING_KINDS = frozenset({ProductKind.current, ProductKind.savings})
#: Kinds that carry a repayment obligation, so can default (credit_status, PD, suitability).
CREDIT_KINDS = frozenset({ProductKind.card, ProductKind.loan, ProductKind.mortgage})
#: Kinds whose principal matures on a contractual date.
MATURING_KINDS = frozenset({ProductKind.term_deposit, ProductKind.investment})
#: Kinds that may carry a negative balance down to minus their arranged limit.
OVERDRAFT_KINDS = frozenset({ProductKind.current, ProductKind.card})


class TransactionKind(StrEnum):
    """What a posting is. The bank's transaction codes each map to one kind."""

    salary = "salary"  # regular income (salary, pension)
    card_spend = "card_spend"
    transfer_in = "transfer_in"
    transfer_out = "transfer_out"
    atm = "atm"  # cash withdrawal
    bill_payment = "bill_payment"
    repayment = "repayment"  # loan instalment or card repayment
    interest = "interest"  # interest credited by the bank
    fee = "fee"  # fees charged by the bank
    penalty = "penalty"  # penalty interest / arrears charges
    other = "other"


#: Postings the bank makes, not the customer (they do not count as the customer's activity).
BANK_INITIATED_KINDS = frozenset(
    {TransactionKind.interest, TransactionKind.fee, TransactionKind.penalty}
)


class ChannelKind(StrEnum):
    """Where a transaction was made."""

    branch = "branch"
    atm = "atm"
    pos = "pos"
    digital = "digital"  # mobile app and online banking
    other = "other"


#: What an interaction is. Not the bank's vocabulary: crmscore's own semantics, which a mapping
#: targets (a bank's contact codes map onto these).
INTERACTION_KINDS: tuple[str, ...] = (
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

_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


def _identifier(value: str) -> str:
    """Values that become part of feature names (``prod_holds_<product>``) must be identifiers."""
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{value!r} becomes part of a feature name: use lower-case letters, digits and _ "
            "(map the bank's code to such a name in the ingest mapping)"
        )
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]


def _unique(values: list[str]) -> list[str]:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"values must be unique, repeated: {repeated}")
    return values


Values = Annotated[list[str], Field(min_length=1), AfterValidator(_unique)]
Identifiers = Annotated[list[Identifier], Field(min_length=1), AfterValidator(_unique)]


class Product(BaseModel):
    """One of the bank's products."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ProductKind
    #: Offered in campaigns and as the next best product.
    cross_sell: bool = False
    #: Yearly margin the bank expects once a customer takes it up (currency): an offer's expected
    #: value is propensity x margin (x (1 - PD) for credit products).
    margin: float = Field(default=0.0, ge=0)


class BankContract(BaseModel):
    """A dataset's declared category values. ``BankContract()`` is the synthetic bank's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regions: Values = ["north", "south", "east", "west", "central"]
    #: Commercial segments, ordered from the lowest assets to the highest.
    segments: Values = ["mass", "emerging_affluent", "affluent", "private"]
    #: Declared income bands, ordered from the lowest to the highest.
    income_bands: Values = ["<2k", "2k-5k", "5k-10k", "10k-20k", ">20k"]
    occupations: Values = [
        "employee", "civil_servant", "self_employed", "business_owner", "farmer", "student",
        "retired", "unemployed",
    ]  # fmt: skip
    genders: Values = ["F", "M", "X"]
    products: dict[Identifier, Product] = Field(
        default={
            "current": Product(kind=ProductKind.current),
            "savings": Product(kind=ProductKind.savings),
            "term_deposit": Product(kind=ProductKind.term_deposit, cross_sell=True, margin=150),
            "credit_card": Product(kind=ProductKind.card, cross_sell=True, margin=120),
            "personal_loan": Product(kind=ProductKind.loan, cross_sell=True, margin=400),
            "mortgage": Product(kind=ProductKind.mortgage, cross_sell=True, margin=1500),
            "wealth_management": Product(kind=ProductKind.investment, cross_sell=True, margin=300),
            "insurance": Product(kind=ProductKind.insurance, cross_sell=True, margin=200),
        },
        min_length=1,
    )
    #: The bank's transaction types and what each one is.
    transaction_types: dict[str, TransactionKind] = Field(
        default={
            "salary": TransactionKind.salary,
            "card_spend": TransactionKind.card_spend,
            "transfer_in": TransactionKind.transfer_in,
            "transfer_out": TransactionKind.transfer_out,
            "atm": TransactionKind.atm,
            "bill_payment": TransactionKind.bill_payment,
            "loan_repayment": TransactionKind.repayment,
            "interest": TransactionKind.interest,
            "fee": TransactionKind.fee,
            "penalty_interest": TransactionKind.penalty,
        },
        min_length=1,
    )
    #: Where transactions are made, and what kind of place each channel is.
    channels: dict[str, ChannelKind] = Field(
        default={
            "branch": ChannelKind.branch,
            "atm": ChannelKind.atm,
            "mobile": ChannelKind.digital,
            "online": ChannelKind.digital,
            "pos": ChannelKind.pos,
        },
        min_length=1,
    )
    merchant_categories: Identifiers = [
        "groceries", "dining", "travel", "fuel", "utilities", "online_retail", "health",
        "entertainment", "education",
    ]  # fmt: skip
    interaction_channels: Values = ["branch", "phone", "mobile", "online", "email"]
    complaint_categories: Values = [
        "fees", "service", "delay", "card", "loan_approval", "digital", "rates",
    ]  # fmt: skip
    #: Complaint categories about slowness (a documented churn driver).
    delay_complaint_categories: list[str] = ["delay", "loan_approval"]

    @model_validator(mode="after")
    def _consistent(self) -> BankContract:
        unknown = sorted(set(self.delay_complaint_categories) - set(self.complaint_categories))
        if unknown:
            raise ValueError(f"delay_complaint_categories {unknown} are not complaint_categories")
        return self

    @property
    def key(self) -> str:
        """The contract as canonical JSON: equal contracts, equal keys. Not cached: a
        ``model_copy(update=...)`` would carry a stale one."""
        return self.model_dump_json()

    def __hash__(self) -> int:  # frozen, so stages may cache what they derive from a contract
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BankContract) and self.key == other.key

    # --- values by meaning ----------------------------------------------------------------------

    def products_of(self, kinds: frozenset[ProductKind] | set[ProductKind]) -> tuple[str, ...]:
        """The declared products whose kind is one of ``kinds``, in declaration order."""
        return tuple(name for name, p in self.products.items() if p.kind in kinds)

    @property
    def product_names(self) -> tuple[str, ...]:
        return tuple(self.products)

    @property
    def cross_sell_products(self) -> tuple[str, ...]:
        return tuple(name for name, p in self.products.items() if p.cross_sell)

    @property
    def credit_products(self) -> tuple[str, ...]:
        return self.products_of(CREDIT_KINDS)

    def transaction_types_of(self, *kinds: TransactionKind) -> tuple[str, ...]:
        """The bank's transaction types of the given kinds (empty when it declares none)."""
        return tuple(name for name, kind in self.transaction_types.items() if kind in kinds)

    def channels_of(self, *kinds: ChannelKind) -> tuple[str, ...]:
        return tuple(name for name, kind in self.channels.items() if kind in kinds)

    def vocabulary(self, name: str) -> tuple[str, ...]:
        """The allowed values of a schema column's vocabulary (``Column.vocabulary``)."""
        if name == "interaction_kinds":
            return INTERACTION_KINDS
        values = getattr(self, name)
        return tuple(values)

    # --- files ----------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> BankContract:
        """Read a ``bank.yaml``; :class:`ContractError` says which entry is wrong and why."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ContractError(f"{path}: cannot read the bank contract: {error}") from error
        return cls.parse(data, path)

    @classmethod
    def parse(cls, data: object, where: object = "bank contract") -> BankContract:
        """Validate ``data`` (a mapping, e.g. a YAML document) as a contract."""
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected a mapping of vocabularies, got {data!r}")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            lines = [
                f"- {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                for e in error.errors()
            ]
            n = len(lines)
            raise ContractError(
                f"{where}: {n} problem{'s' * (n > 1)} in the bank contract:\n" + "\n".join(lines)
            ) from None

    def dump(self) -> str:
        """The contract as YAML (what :meth:`load` reads back)."""
        import yaml

        data = self.model_dump(mode="json")
        header = (
            "# The bank's vocabulary (crmscore's raw data contract, the values part).\n"
            "# Kinds say what a value means; see `crmscore schema` and the README.\n"
        )
        return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def write(self, folder: Path) -> Path:
        """Write ``folder/bank.yaml`` atomically; returns its path."""
        import tempfile

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{CONTRACT_FILE}.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.dump())
        os.chmod(tmp, 0o644)
        target = folder / CONTRACT_FILE
        os.replace(tmp, target)
        return target


class ContractError(ValueError):
    """A ``bank.yaml`` that cannot be read or breaks a rule; the message says where."""


DEFAULT_CONTRACT = BankContract()


def contract_of(folder: Path) -> BankContract:
    """The contract of the dataset in ``folder``: its ``bank.yaml``, or the default."""
    path = os.path.join(folder, CONTRACT_FILE)  # one stat per call: /score asks several times
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return DEFAULT_CONTRACT
    if not S_ISREG(stat.st_mode):
        return DEFAULT_CONTRACT
    return _load_cached(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int, size: int) -> BankContract:
    return BankContract.load(Path(path))


def current_contract() -> BankContract:
    """The contract of the configured dataset (``settings.raw_dir``), read at call time."""
    from crmscore.settings import get_settings

    return contract_of(get_settings().raw_dir)
