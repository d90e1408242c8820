"""The synthetic bank: deterministic, learnable but not trivial, with realistic outcome rates."""

from __future__ import annotations

import platform
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crmscore import schema
from crmscore.cli import app
from crmscore.contract import DEFAULT_CONTRACT, OVERDRAFT_KINDS
from crmscore.synthetic import BankConfig, generate_bank
from crmscore.synthetic.truth import oracle_auc, oracle_outcomes


@pytest.fixture(scope="module")
def default_bank(tmp_path_factory):
    """The bank at default settings (the `make demo` size): ~9 s to generate."""
    out = tmp_path_factory.mktemp("default-bank")
    generate_bank(BankConfig(), out, progress=False)
    return out


#: What the synthetic bank writes: every table but the bank's own ``outcomes`` (its labels are
#: derived from accounts and credit_status, as a bank without an outcomes register would).
SIMULATED = [name for name in schema.TABLES if name != "outcomes"]


def test_writes_every_table_with_the_schema_columns(default_bank):
    assert not (default_bank / "raw" / "outcomes").exists()
    for name in SIMULATED:
        table = schema.TABLES[name]
        frame = pd.read_parquet(default_bank / "raw" / name)
        assert list(frame.columns) == table.column_names, name
        assert len(frame) > 0, name


def test_same_seed_gives_identical_data(tmp_path):
    cfg = BankConfig(customers=300, months=8, seed=11)
    first = generate_bank(cfg, tmp_path / "a", progress=False)
    second = generate_bank(cfg, tmp_path / "b", progress=False)
    assert first.rows == second.rows
    for name in [*SIMULATED, "../oracle/probabilities", "../oracle/events"]:
        a = pd.read_parquet(tmp_path / "a" / "raw" / name)
        b = pd.read_parquet(tmp_path / "b" / "raw" / name)
        pd.testing.assert_frame_equal(a, b)


def test_different_seed_gives_different_data(tmp_path):
    generate_bank(BankConfig(customers=300, months=8, seed=1), tmp_path / "a", progress=False)
    generate_bank(BankConfig(customers=300, months=8, seed=2), tmp_path / "b", progress=False)
    a = pd.read_parquet(tmp_path / "a" / "raw" / "transactions")
    b = pd.read_parquet(tmp_path / "b" / "raw" / "transactions")
    assert len(a) != len(b) or not a["amount"].equals(b["amount"])


def test_oracle_auc_is_learnable_but_not_trivial(default_bank):
    aucs = oracle_auc(default_bank / "oracle")
    assert set(aucs) == {"churn", "default"} | {
        f"cross_sell:{p}" for p in DEFAULT_CONTRACT.cross_sell_products
    }
    for outcome, auc in aucs.items():
        assert 0.75 <= auc <= 0.95, f"{outcome}: oracle AUC {auc:.3f} outside [0.75, 0.95]"


def test_outcome_rates_are_realistic(default_bank):
    churn = oracle_outcomes(default_bank / "oracle", "churn")
    monthly_churn = 1 - (1 - churn["label"].mean()) ** (1 / 3)
    assert 0.01 <= monthly_churn <= 0.02, monthly_churn
    annual_default = oracle_outcomes(default_bank / "oracle", "default")["label"].mean()
    assert 0.01 <= annual_default <= 0.08, annual_default
    take_up = (
        oracle_outcomes(default_bank / "oracle", "cross_sell").groupby("product")["label"].mean()
    )
    assert take_up.between(0.005, 0.08).all(), take_up.to_dict()


def test_oracle_is_calibrated_for_short_horizons(default_bank):
    """Oracle probabilities are true hazards: their mean matches the realised rate."""
    for outcome in ("churn", "cross_sell"):
        frame = oracle_outcomes(default_bank / "oracle", outcome)
        assert frame["probability"].mean() == pytest.approx(frame["label"].mean(), rel=0.2)


def test_customers_aggregate_several_accounts_and_balances_respect_limits(default_bank):
    accounts = pd.read_parquet(default_bank / "raw" / "accounts")
    assert accounts.groupby("customer_id").size().mean() > 2.5
    tx = pd.read_parquet(
        default_bank / "raw" / "transactions", columns=["account_id", "balance_after"]
    )
    tx = tx.merge(accounts[["account_id", "product", "limit_amount"]], on="account_id")
    may_go_negative = tx["product"].isin(DEFAULT_CONTRACT.products_of(OVERDRAFT_KINDS))
    assert (tx.loc[~may_go_negative, "balance_after"] >= -0.005).all()
    # Unarranged overdrafts exist, as in real banks, but only on current accounts and rarely.
    beyond = tx["balance_after"] < -tx["limit_amount"] - 0.005
    assert set(tx.loc[beyond, "product"]) == {"current"}
    assert 0 < beyond.mean() < 0.01


def test_no_activity_after_an_account_closes(default_bank):
    accounts = pd.read_parquet(default_bank / "raw" / "accounts")
    tx = pd.read_parquet(default_bank / "raw" / "transactions", columns=["account_id", "ts"])
    tx = tx.merge(accounts[["account_id", "open_date", "close_date"]], on="account_id")
    closed = tx["close_date"].notna()
    assert (tx.loc[closed, "ts"] < pd.to_datetime(tx.loc[closed, "close_date"])).all()
    assert (tx["ts"] >= pd.to_datetime(tx["open_date"])).all()


def test_generate_cli_writes_a_bank(tmp_path):
    result = CliRunner().invoke(
        app,
        ["generate", "--customers", "50", "--months", "6", "--out", str(tmp_path), "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "raw" / "transactions").is_dir()
    assert (tmp_path / "oracle" / "probabilities").is_dir()


def test_generate_cli_rejects_bad_arguments(tmp_path):
    result = CliRunner().invoke(app, ["generate", "--customers", "3", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "customers" in result.output.lower()


def test_help_works():
    for args in (["--help"], ["generate", "--help"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output


def test_an_economic_shock_changes_only_the_months_from_its_start(tmp_path):
    from crmscore.synthetic import EconomicShock

    plain = BankConfig(customers=600, months=12, seed=5)
    shocked = BankConfig(customers=600, months=12, seed=5, shock=EconomicShock("2024-07-01"))
    result = CliRunner().invoke(
        app,
        ["generate", "--customers", "600", "--months", "12", "--seed", "5",
         "--shock-from", "2024-07-01", "--out", str(tmp_path / "cli"), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    generate_bank(plain, tmp_path / "plain", progress=False)
    generate_bank(shocked, tmp_path / "shocked", progress=False)
    start = pd.Timestamp("2024-07-01")

    def read(bank: str, table: str) -> pd.DataFrame:
        return pd.read_parquet(tmp_path / bank / "raw" / table)

    before, after = {}, {}
    for bank in ("plain", "shocked"):
        tx = read(bank, "transactions")
        before[bank] = tx[tx["ts"] < start].reset_index(drop=True)
        after[bank] = tx[tx["ts"] >= start]
    pd.testing.assert_frame_equal(before["plain"], before["shocked"])
    pd.testing.assert_frame_equal(read("cli", "transactions"), read("shocked", "transactions"))

    def total(frame: pd.DataFrame, kind: str) -> float:
        return frame.loc[frame["type"] == kind, "amount"].sum()

    # Salaries are cut by a quarter from the shock on (the same people are paid less).
    assert total(after["shocked"], "salary") < 0.8 * total(after["plain"], "salary")
    # Credit cards carry higher balances (utilisation rises).
    cards = read("plain", "accounts").query("product == 'credit_card'")["account_id"]

    def card_balance(bank: str) -> float:
        status = read(bank, "credit_status")
        rows = status[status["account_id"].isin(cards) & (status["month"] >= start.date())]
        return rows["balance"].mean()

    assert card_balance("shocked") > 1.2 * card_balance("plain")
    events = {
        bank: pd.read_parquet(tmp_path / bank / "oracle" / "events").query("outcome == 'default'")
        for bank in ("plain", "shocked")
    }
    assert len(events["shocked"]) > len(events["plain"])


def test_a_shock_must_start_on_a_month_start():
    from crmscore.synthetic import EconomicShock

    with pytest.raises(ValueError, match="month start"):
        BankConfig(shock=EconomicShock("2024-07-15"))


# --- a bank simulated in groups (GROUP_CUSTOMERS): bounded memory, every core ---------------------


def test_each_group_numbers_its_rows_apart_from_the_others():
    from crmscore.synthetic.accounts import IdSpace

    # group 1 of 3 takes every third id from 2 (groups 0 and 2 take 1, 4, 7... and 3, 6, 9...)
    group = IdSpace(group=1, groups=3)
    assert group.ids(1, 4).tolist() == [2, 5, 8, 11]
    assert group.ids(3, 2).tolist() == [8, 11]  # its third and fourth rows
    assert group.index(np.array([2, 11])).tolist() == [0, 3]
    # a bank of one group numbers 1, 2, 3 as a bank always did
    assert IdSpace().ids(1, 3).tolist() == [1, 2, 3]


def test_a_bank_in_groups_is_the_same_whatever_the_number_of_processes(tmp_path):
    cfg = BankConfig(customers=300, months=6, seed=3)
    one = generate_bank(cfg, tmp_path / "one", progress=False, workers=1, group_customers=100)
    two = generate_bank(cfg, tmp_path / "two", progress=False, workers=2, group_customers=100)
    assert one.rows == two.rows and one.events == two.events
    for name in [*SIMULATED, "../oracle/probabilities", "../oracle/events"]:
        a = pd.read_parquet(tmp_path / "one" / "raw" / name)
        b = pd.read_parquet(tmp_path / "two" / "raw" / name)
        pd.testing.assert_frame_equal(a, b)


def test_a_bank_in_groups_is_one_valid_bank_with_each_group_on_its_own_stream(tmp_path):
    from crmscore.dataset import read_dataset
    from crmscore.validation import validate_dataset

    cfg = BankConfig(customers=300, months=6, seed=3)
    generate_bank(cfg, tmp_path / "whole", progress=False, group_customers=300)
    generate_bank(cfg, tmp_path / "groups", progress=False, workers=1, group_customers=100)
    tables = read_dataset(tmp_path / "groups" / "raw")
    validate_dataset(tables)  # unique ids, every reference resolves, dates in order
    accounts, transactions = tables["accounts"], tables["transactions"]
    # customers 1-100 are group 0 of 3: their accounts are numbered 1, 4, 7...
    first_group = accounts[accounts["customer_id"] <= 100]
    assert (first_group["account_id"] % 3 == 1).all()
    assert transactions["transaction_id"].is_unique
    # the customers are drawn at once, so the groups change only what they did (and so when
    # they joined: no later than their first account)
    whole = read_dataset(tmp_path / "whole" / "raw")["customers"]
    pd.testing.assert_frame_equal(
        whole.drop(columns="join_date"), tables["customers"].drop(columns="join_date")
    )
    # group 0 goes on with the customers' stream, groups 1 and 2 have their own: no group's
    # months repeat another's
    amounts = transactions.merge(accounts[["account_id", "customer_id"]], on="account_id")
    per_group = amounts.groupby((amounts["customer_id"] - 1) // 100)["amount"].sum()
    assert per_group.nunique() == 3


def test_a_group_that_fails_in_its_process_fails_the_whole_bank(tmp_path):
    from crmscore.synthetic import bank

    cfg = BankConfig(customers=300, months=6, seed=3)
    groups = bank._groups(cfg, None, 100)
    # no folder to write the parts into: each group fails at its first written month, in its
    # own process, and the error reaches the caller (generate_bank then drops its temp folder)
    with pytest.raises(FileNotFoundError):
        bank._simulate_in_processes(cfg, groups, tmp_path / "missing", 2, lambda: None)


def test_a_bad_setting_in_the_environment_is_one_clear_error_and_writes_nothing(
    tmp_path, monkeypatch
):
    from crmscore.settings import get_settings

    monkeypatch.setenv("CRMSCORE_GENERATOR__WORKERS", "0")  # at least one process
    get_settings.cache_clear()
    result = CliRunner().invoke(
        app,
        ["generate", "--customers", "20", "--months", "6", "--out", str(tmp_path / "bank"),
         "--no-progress"],
    )  # fmt: skip
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "generator.workers" in result.output
    assert "greater than or equal to 1" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "bank").exists()


def test_stable_order_is_lexsort():
    """The postings' order (by account, then time; ties keep their order) decides running
    balances and transaction ids: the combined-key sort must give lexsort's order exactly."""
    from crmscore.synthetic.simulation import stable_order

    major = np.array([7, 3, 7, 3, 5, 3])  # accounts
    minor = np.array([9, 2, 1, 2, 0, 1])  # seconds; rows 1 and 3 tie and stay in that order
    assert stable_order(major, minor).tolist() == [5, 1, 3, 4, 2, 0]
    rng = np.random.default_rng(0)
    major, minor = rng.integers(0, 50, 5_000), rng.integers(0, 30, 5_000)
    np.testing.assert_array_equal(stable_order(major, minor), np.lexsort((minor, major)))
    huge = np.array([0, 2**61, 5])  # the combined key would overflow: lexsort itself
    np.testing.assert_array_equal(stable_order(huge, minor[:3]), np.lexsort((minor[:3], huge)))
    assert stable_order(np.array([], int), np.array([], int)).tolist() == []


# --- the generator's allocator setting (crmscore.allocator) ------------------------------------
_FREE_AN_ARRAY = """
import os
import sys
import numpy as np
from crmscore.allocator import keep_freed_memory

applied = keep_freed_memory() if sys.argv[1] == "keep" else True
def resident() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = resident()
month = np.ones(20_000_000 // 8)  # a 20 MB array, as a simulated month holds many of
del month
print(applied, resident() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc allocator setting")
def test_the_generator_keeps_freed_arrays_for_the_next_month():
    """glibc returns a freed 20 MB array to the kernel at once (the next one faults its pages in
    again); after ``keep_freed_memory`` the process keeps it for reuse."""

    def grown(mode: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", _FREE_AN_ARRAY, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[0], int(out[1])

    assert grown("keep") == ("True", pytest.approx(20_000_000, rel=0.1))
    _, returned = grown("default")
    assert returned < 2_000_000  # given back when freed
