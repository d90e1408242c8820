"""The open contract: a bank's own category values, optional tables and columns, overdrafts,
month ends — each rule with a clear message, and what the data lacks left out, never made up."""

from __future__ import annotations

import pandas as pd
import pytest

from crmscore.contract import (
    DEFAULT_CONTRACT,
    BankContract,
    ContractError,
    ProductKind,
    TransactionKind,
)
from crmscore.dataset import write_dataset
from crmscore.schema import TABLES
from crmscore.settings import get_settings
from crmscore.validation import DatasetValidationError, check_dataset, validate_dataset

#: The tiny bank's values renamed into a bank's own vocabulary.
OWN = BankContract.parse(
    {
        "regions": ["Praha", "Brno", "Ostrava"],
        "segments": ["retail", "premium"],
        "products": {
            "giro": {"kind": "current"},
            "card": {"kind": "card", "cross_sell": True, "margin": 90},
            "spar": {"kind": "savings"},
            "consumer_loan": {"kind": "loan", "cross_sell": True},
            "fixed": {"kind": "term_deposit", "cross_sell": True},
            "home_loan": {"kind": "mortgage", "cross_sell": True, "margin": 1200},
        },
        "transaction_types": {
            "SAL": "salary", "POS": "card_spend", "OUT": "transfer_out", "IN": "transfer_in",
            "CASH": "atm", "BILL": "bill_payment", "RPY": "repayment", "INT": "interest",
            "FEE": "fee",
        },
    }
)  # fmt: skip
_PRODUCTS = {"current": "giro", "credit_card": "card", "savings": "spar",
             "personal_loan": "consumer_loan", "term_deposit": "fixed",
             "mortgage": "home_loan"}  # fmt: skip
_TYPES = {"salary": "SAL", "card_spend": "POS", "transfer_out": "OUT", "transfer_in": "IN",
          "atm": "CASH", "bill_payment": "BILL", "loan_repayment": "RPY", "interest": "INT",
          "fee": "FEE"}  # fmt: skip


def _in_own_vocabulary(bank: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    bank["customers"]["region"] = ["Praha", "Brno", "Ostrava"]
    bank["customers"]["segment"] = ["retail", "premium", "premium"]
    bank["accounts"]["product"] = bank["accounts"]["product"].map(_PRODUCTS)
    bank["transactions"]["type"] = bank["transactions"]["type"].map(_TYPES)
    bank["interactions"]["product"] = bank["interactions"]["product"].map(
        lambda p: _PRODUCTS.get(p, "fixed") if isinstance(p, str) else p
    )
    return bank


# --- the bank's own values --------------------------------------------------------------------


def test_a_bank_declares_its_own_values_and_ours_are_refused_then(tiny_bank, tiny_as_of):
    own = _in_own_vocabulary(tiny_bank)
    assert validate_dataset(own, tiny_as_of, OWN) == []
    own["customers"].loc[0, "region"] = "north"  # crmscore's default, not this bank's
    with pytest.raises(DatasetValidationError) as caught:
        validate_dataset(own, tiny_as_of, OWN)
    (problem,) = caught.value.problems
    assert (problem.table, problem.column, problem.rule) == ("customers", "region", "category")
    assert "must be one of Praha, Brno, Ostrava (bank.yaml regions)" in str(problem)
    assert "row 1 (customer_id=1): 'north'" in str(problem)


def test_kinds_say_what_the_banks_values_mean():
    assert OWN.credit_products == ("card", "consumer_loan", "home_loan")
    assert OWN.cross_sell_products == ("card", "consumer_loan", "fixed", "home_loan")
    assert OWN.transaction_types_of(TransactionKind.salary) == ("SAL",)
    assert OWN.transaction_types_of(TransactionKind.penalty) == ()  # this bank has none
    assert OWN.products_of({ProductKind.current}) == ("giro",)
    # A missing entry keeps crmscore's default.
    assert OWN.income_bands == DEFAULT_CONTRACT.income_bands


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"regions": ["a", "a"]}, "regions: Value error, values must be unique, repeated: ['a']"),
        ({"regions": []}, "regions: List should have at least 1 item"),
        (
            {"products": {"Home Loan": {"kind": "mortgage"}}},
            "'Home Loan' becomes part of a feature",
        ),
        ({"products": {"giro": {"kind": "chequing"}}}, "products.giro.kind: Input should be"),
        ({"transaction_types": {"SAL": "wages"}}, "transaction_types.SAL: Input should be"),
        ({"colours": ["red"]}, "colours: Extra inputs are not permitted"),
        ({"delay_complaint_categories": ["slow"]}, "['slow'] are not complaint_categories"),
    ],
)
def test_a_broken_contract_says_which_entry_and_why(data, message):
    with pytest.raises(ContractError) as caught:
        BankContract.parse(data, "bank.yaml")
    assert str(caught.value).startswith("bank.yaml: ") and message in str(caught.value)


def test_the_contract_round_trips_through_its_file(tmp_path):
    path = OWN.write(tmp_path)
    assert path.name == "bank.yaml" and BankContract.load(path) == OWN
    path.write_text("regions: [unclosed\n")
    with pytest.raises(ContractError, match="cannot read the bank contract"):
        BankContract.load(path)


def test_the_schema_documents_every_contract_entry():
    from crmscore.schema_doc import _CONTRACT_ENTRIES

    assert list(_CONTRACT_ENTRIES) == list(BankContract.model_fields)


# --- optional tables and columns, overdrafts, month ends ----------------------------------------


def test_a_bank_without_interactions_credit_status_and_optional_columns_is_valid(
    tiny_bank, tiny_as_of
):
    del tiny_bank["interactions"], tiny_bank["credit_status"]
    optional = ["occupation", "income_band", "segment", "marketing_consent", "manager_id"]
    tiny_bank["customers"] = tiny_bank["customers"].drop(columns=optional)
    tiny_bank["transactions"] = tiny_bank["transactions"].drop(columns="channel")
    typed, problems = check_dataset(tiny_bank, tiny_as_of)
    assert problems == []
    assert set(typed) == {"customers", "accounts", "transactions"}
    assert "segment" not in typed["customers"]  # absent stays absent: never made up


def test_month_end_columns_must_be_month_ends(tiny_bank, tiny_as_of):
    tiny_bank["credit_status"].loc[1, "month"] = pd.Timestamp("2024-02-28")  # 2024 is a leap year
    with pytest.raises(DatasetValidationError) as caught:
        validate_dataset(tiny_bank, tiny_as_of)
    (problem,) = caught.value.problems
    assert (problem.column, problem.rule, problem.count) == ("month", "month_end", 1)
    assert "must be the last day of its month" in str(problem) and "2024-02-28" in str(problem)


def _raw_folder(tables: dict[str, pd.DataFrame], root, contract=None):
    raw = root / "raw"
    write_dataset(tables, raw, contract)
    return raw


@pytest.fixture
def bare_bank(tiny_bank, tiny_as_of, tmp_path, monkeypatch):
    """The tiny bank without interactions, credit_status, consent, segment or channels, written
    as a dataset folder the settings point at."""
    del tiny_bank["interactions"], tiny_bank["credit_status"]
    tiny_bank["customers"] = tiny_bank["customers"].drop(columns=["segment", "marketing_consent"])
    tiny_bank["transactions"] = tiny_bank["transactions"].drop(columns="channel")
    # One unarranged overdraft: current account 101 (limit 500) goes to -650.5 in January.
    tiny_bank["transactions"].loc[2, "balance_after"] = -650.5
    tiny_bank["transactions"].loc[3, "balance_after"] = -655.5
    _raw_folder(tiny_bank, tmp_path)
    monkeypatch.setenv("CRMSCORE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_the_build_leaves_out_what_the_data_lacks_and_counts_overdrafts(bare_bank):
    import pyarrow.parquet as pq

    from features.build import build_feature_tables

    report = build_feature_tables()
    assert set(report.tables) == {"transactions", "products", "profile"}
    assert report.used_tables == ["customers", "accounts", "transactions"]
    assert report.absent_tables == ["interactions", "credit_status"]
    profile = pq.read_schema(report.tables["profile"]).names
    assert "segment" not in profile and "marketing_consent" not in profile
    assert "income_band" in profile  # present columns give their features
    assert {"segment", "segment_rank", "marketing_consent"} <= set(report.left_out["profile"])
    assert "txn_branch_share_3m" in report.left_out["transactions"]
    assert "interactions" in report.left_out  # the whole view

    tx = pd.read_parquet(report.tables["transactions"]).set_index(
        ["customer_id", "event_timestamp"]
    )
    february = tx.loc[(1, pd.Timestamp("2024-02-01", tz="UTC"))]
    # Customer 1: two postings beyond the arranged -500 on 2024-01-05 and 2024-01-31 (two days),
    # the lowest balance within January -655.5 (not the month end).
    assert february["txn_overlimit_postings_3m"] == 2
    assert february["txn_overlimit_days_12m"] == 2
    assert february["txn_negative_postings_3m"] == 2
    assert february["txn_min_balance_1m"] == pytest.approx(-655.5)


def test_feast_declares_only_what_was_built(bare_bank):
    from features.build import apply, build_feature_tables
    from features.store import get_store

    build_feature_tables()
    apply()
    store = get_store()
    assert {v.name for v in store.list_feature_views()} == {"transactions", "products", "profile"}
    churn = store.get_feature_service("churn")
    served = {f.name for p in churn.feature_view_projections for f in p.features}
    assert "segment" not in served and "int_complaints_3m" not in served
    assert "txn_overlimit_postings_3m" in served


def test_a_rebuild_without_a_table_removes_its_view(tiny_bank, tmp_path, monkeypatch):
    from features.build import apply, build_feature_tables
    from features.store import get_store

    monkeypatch.setenv("CRMSCORE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        _raw_folder(dict(tiny_bank), tmp_path)
        build_feature_tables()
        apply()
        assert "interactions" in {v.name for v in get_store().list_feature_views()}
        del tiny_bank["interactions"]
        _raw_folder(tiny_bank, tmp_path)  # the bank re-ingested without its interaction log
        report = build_feature_tables()
        apply()
        assert "interactions" not in report.tables
        assert not (tmp_path / "features" / "tables" / "interactions.parquet").exists()
        assert "interactions" not in {v.name for v in get_store().list_feature_views()}
    finally:
        get_settings.cache_clear()


def test_the_banks_own_products_name_the_features(tiny_bank, tiny_as_of, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from features.build import build_feature_tables

    _raw_folder(_in_own_vocabulary(tiny_bank), tmp_path, OWN)
    monkeypatch.setenv("CRMSCORE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        report = build_feature_tables()
    finally:
        get_settings.cache_clear()
    products = pq.read_schema(report.tables["products"]).names
    assert "prod_holds_home_loan" in products and "prod_holds_mortgage" not in products
    interactions = pq.read_schema(report.tables["interactions"]).names
    assert "int_page_views_home_loan_3m" in interactions
    tx = pq.read_schema(report.tables["transactions"]).names
    assert "txn_salary_3m" in tx and "txn_penalty_3m" not in tx  # no penalty type declared


# --- rules that need data the bank may not have --------------------------------------------------


def _book(consent: bool):
    """Two customers' feature rows and scores, as ``serving.scoring.score_rows`` gives them."""
    import numpy as np

    from crmscore.settings import ServingSettings
    from features.online import FeatureLayout, FeatureRows
    from serving.catalogue import cross_sell_products
    from serving.scoring import Predictions, decide

    frame = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "prod_holds_insurance": [0.0, 0.0],
            "prod_n_accounts": [2.0, 3.0],
            "txn_deposit_balance": [100.0, 100.0],
            "region": ["north", "south"],
            **({"marketing_consent": [1.0, 0.0]} if consent else {}),  # customer 2 said no
        }
    )
    features = FeatureRows.from_frame(frame, FeatureLayout.of(frame.columns[1:]))
    offers = cross_sell_products()
    insurance = [p == "insurance" for p in offers]
    predictions = Predictions(
        churn=np.array([0.05, 0.05]),
        probability_of_default=np.array([0.01, 0.01]),
        products=offers,
        propensity=np.array([np.where(insurance, 0.2, 0.01), np.where(insurance, 0.3, 0.01)]),
    )
    return features, decide(predictions, features, ServingSettings())


def test_a_list_needing_consent_is_refused_without_a_consent_column():
    from crmscore.settings import ServingSettings
    from serving.errors import InvalidRequest
    from serving.targets import TargetQuery, select_targets

    features, scores = _book(consent=False)
    query = TargetQuery(product="insurance", top=10)
    with pytest.raises(InvalidRequest) as caught:
        select_targets(query, features, scores, ServingSettings())
    assert caught.value.field == "require_consent"
    assert "no marketing consent column" in str(caught.value) and "assume_consent" in str(
        caught.value
    )
    assumed = TargetQuery(product="insurance", top=10, assume_consent=True)
    ranked, excluded = select_targets(assumed, features, scores, ServingSettings())
    assert ranked["customer_id"].tolist() == [2, 1] and "no marketing consent" not in excluded


def test_with_a_consent_column_customers_without_consent_are_excluded():
    from crmscore.settings import ServingSettings
    from serving.targets import TargetQuery, select_targets

    features, scores = _book(consent=True)
    ranked, excluded = select_targets(
        TargetQuery(product="insurance", top=10), features, scores, ServingSettings()
    )
    assert ranked["customer_id"].tolist() == [1]
    assert excluded["no marketing consent"] == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"contacted_within_days": 30}, "contacted_within_days"),
        ({"segments": ("mass",)}, "segments"),
    ],
)
def test_filters_needing_absent_data_are_refused(query, field):
    from crmscore.settings import ServingSettings
    from serving.errors import InvalidRequest
    from serving.targets import TargetQuery, select_targets

    features, scores = _book(consent=True)
    with pytest.raises(InvalidRequest) as caught:
        select_targets(
            TargetQuery(product="insurance", top=10, **query), features, scores, ServingSettings()
        )
    assert caught.value.field == field


# --- the generator writes a bank's vocabulary ---------------------------------------------------


def test_the_generator_writes_the_declared_vocabulary(tmp_path):
    from crmscore.ingest import read_validated
    from crmscore.synthetic import BankConfig, generate_bank

    own = OWN.model_copy(
        update={
            "products": {
                **OWN.products,
                "fund": DEFAULT_CONTRACT.products["wealth_management"],
                "cover": DEFAULT_CONTRACT.products["insurance"],
            },
            "transaction_types": {**OWN.transaction_types, "PEN": TransactionKind.penalty},
        }
    )
    generate_bank(
        BankConfig(customers=60, months=6, seed=2, contract=own), tmp_path, progress=False
    )
    tables, _ = read_validated(tmp_path / "raw", as_of=pd.Timestamp("2030-01-01"))
    assert set(tables["customers"]["region"]) <= set(own.regions)
    assert set(tables["customers"]["segment"]) <= set(own.segments)
    assert set(tables["accounts"]["product"]) <= set(own.products)
    assert "home_loan" in set(tables["accounts"]["product"])
    assert set(tables["transactions"]["type"]) <= set(own.transaction_types)
    assert BankContract.load(tmp_path / "raw" / "bank.yaml") == own


def test_the_generator_refuses_a_contract_it_cannot_simulate(tmp_path):
    from crmscore.synthetic import BankConfig, generate_bank

    no_mortgage = OWN.model_copy(
        update={"products": {k: v for k, v in OWN.products.items() if k != "home_loan"}}
    )
    with pytest.raises(ValueError, match="simulates a product of kind 'mortgage'"):
        generate_bank(BankConfig(customers=20, months=6, contract=no_mortgage), tmp_path)
    assert not (tmp_path / "raw").exists()


def test_every_table_of_the_schema_is_documented():
    assert set(TABLES) == {
        "customers", "accounts", "transactions", "interactions", "credit_status", "outcomes",
    }  # fmt: skip
    assert [n for n, t in TABLES.items() if t.optional] == [
        "interactions",
        "credit_status",
        "outcomes",
    ]
