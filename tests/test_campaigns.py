"""Campaigns without a server: the control group, the lift and its interval, atomic storage,
results from raw accounts, and the synthetic bank's simulated contacts."""

from __future__ import annotations

from datetime import date
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crmscore.settings import get_settings
from serving.console import campaigns as store
from serving.errors import InvalidRequest


def _campaign(**changes) -> store.Campaign:
    values = dict(
        id="20260101-mortgage-abc123",
        name="spring mortgages",
        product="mortgage",
        campaign_date=date(2026, 1, 1),
        window_months=3,
        control_share=0.2,
        seed=5,
        query={"product": "mortgage", "top": 10},
        models={"cross_sell": {"model": "crmscore-cross_sell", "version": "1"}},
        snapshot=date(2026, 1, 1),
        created_at="2026-01-02T09:00:00+00:00",
        created_by="marketing",
    )
    return store.Campaign(**{**values, **changes})


def _ranked(ids) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "rank": range(1, n + 1),
            "customer_id": ids,
            "product": "mortgage",
            "propensity": np.linspace(0.5, 0.1, n),
            "expected_value": np.linspace(750, 150, n),
            "probability_of_default": 0.01,
            "churn_probability": 0.02,
            "tier": "B",
            "segment": "mass",
            "region": "north",
            "reasons": [["Age is 31: raises the chance of taking up the mortgage."]] * n,
        }
    )


# --- control group -------------------------------------------------------------------------------


def test_control_group_is_the_share_asked_reproducible_by_seed_and_independent_of_rank():
    ids = pd.Series(range(100, 200))
    held = store.control_mask(ids, 0.2, seed=5)
    assert held.sum() == 20
    assert (store.control_mask(ids, 0.2, seed=5) == held).all()
    assert not (store.control_mask(ids, 0.2, seed=6) == held).all()
    reversed_ids = ids[::-1].reset_index(drop=True)
    # the same customers are held out whatever order the list is ranked in
    assert set(reversed_ids[store.control_mask(reversed_ids, 0.2, seed=5)]) == set(ids[held])
    assert store.control_mask(ids, 0.0, seed=5).sum() == 0


@pytest.mark.parametrize("share", [-0.1, 0.51, 1.0])
def test_control_share_outside_its_bounds_is_refused_naming_the_field(share):
    with pytest.raises(InvalidRequest, match="control_share") as error:
        store.control_mask(pd.Series([1, 2, 3]), share, seed=1)
    assert error.value.field == "control_share"


def test_the_list_flags_control_customers_as_not_contacted():
    listed = store.campaign_list(_campaign(), _ranked(list(range(1, 11))))
    assert list(listed.columns) == store.LIST_SCHEMA.names
    assert (listed["group"] == "control").sum() == 2
    assert (listed["contacted"] == (listed["group"] == "target")).all()
    assert listed["reasons"].iloc[0] == "Age is 31: raises the chance of taking up the mortgage."


# --- the lift and its interval -------------------------------------------------------------------


def test_wilson_and_newcombe_intervals_match_the_published_examples():
    # Newcombe (1998), Statistics in Medicine 17:857-872: 81/263 (Wilson) and 56/70 - 48/80
    # (method 10, the hybrid score interval).
    low, high = store.wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    lift, low, high = store.lift_interval(store.TakeUp(70, 56), store.TakeUp(80, 48))
    assert (round(lift, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)


# --- storage -------------------------------------------------------------------------------------


def test_saved_campaign_reads_back_and_never_overwrites(tmp_path):
    campaign = _campaign()
    listed = store.campaign_list(campaign, _ranked([1, 2, 3, 4, 5]))
    store.save_campaign(campaign, listed, tmp_path)
    loaded, frame = store.load_campaign(campaign.id, tmp_path)
    assert loaded == campaign
    pd.testing.assert_frame_equal(frame, listed)
    with pytest.raises(OSError):
        store.save_campaign(campaign, listed, tmp_path)
    assert [c.id for c in store.list_campaigns(tmp_path)] == [campaign.id]
    assert sorted(p.name for p in tmp_path.iterdir()) == [campaign.id]  # no staging left


def test_a_failed_save_leaves_nothing(tmp_path):
    campaign = _campaign()
    broken = store.campaign_list(campaign, _ranked([1, 2, 3])).assign(customer_id="not an id")
    with pytest.raises((TypeError, ValueError, Exception)):
        store.save_campaign(campaign, broken, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert store.list_campaigns(tmp_path) == []


@pytest.mark.parametrize("campaign_id", ["../etc", "UPPER", "", "a/b"])
def test_unknown_or_malformed_campaign_ids_are_404(tmp_path, campaign_id):
    with pytest.raises(store.UnknownCampaign) as error:
        store.load_campaign(campaign_id, tmp_path)
    assert error.value.status == 404


# --- results from the raw accounts ---------------------------------------------------------------


def _raw(tmp_path: Path, opened: list[tuple[int, str, str]], last_ts: str) -> Path:
    raw = tmp_path / "raw"
    (raw / "accounts").mkdir(parents=True)
    (raw / "transactions").mkdir()
    pd.DataFrame(
        {
            "account_id": range(1, len(opened) + 1),
            "customer_id": [c for c, _, _ in opened],
            "product": [p for _, p, _ in opened],
            "open_date": pd.to_datetime([d for _, _, d in opened]).date,
        }
    ).to_parquet(raw / "accounts" / "part-0000.parquet")
    pd.DataFrame({"ts": pd.to_datetime([last_ts])}).to_parquet(
        raw / "transactions" / "part-0000.parquet"
    )
    return raw


def test_results_count_take_up_within_the_window_per_group(tmp_path):
    campaign = _campaign(control_share=0.5, seed=1)
    listed = store.campaign_list(campaign, _ranked(list(range(1, 9))))
    target = listed.loc[listed["group"] == "target", "customer_id"].tolist()
    control = listed.loc[listed["group"] == "control", "customer_id"].tolist()
    raw = _raw(
        tmp_path,
        [
            (target[0], "mortgage", "2026-01-01"),  # first day of the window: counts
            (target[1], "mortgage", "2026-03-31"),  # last day: counts
            (target[2], "mortgage", "2026-04-01"),  # window over: does not count
            (target[3], "insurance", "2026-02-01"),  # another product: does not count
            (control[0], "mortgage", "2026-02-15"),
            (control[1], "mortgage", "2025-12-31"),  # before the campaign: does not count
            (999, "mortgage", "2026-02-01"),  # not on the list
        ],
        last_ts="2026-03-31 23:00",
    )
    result = store.campaign_results(campaign, listed, raw)
    assert (result.target.customers, result.target.took_up) == (4, 2)
    assert (result.control.customers, result.control.took_up) == (4, 1)
    assert result.lift == pytest.approx(0.25)
    assert result.lift_low < 0 < result.lift_high  # 8 customers prove nothing
    assert result.relative_lift == pytest.approx(2.0)


def test_results_before_the_window_has_passed_are_refused(tmp_path):
    campaign = _campaign()
    listed = store.campaign_list(campaign, _ranked([1, 2, 3, 4, 5]))
    raw = _raw(tmp_path, [(1, "mortgage", "2026-01-10")], last_ts="2026-03-30 12:00")
    with pytest.raises(store.CampaignPending, match="window runs to 2026-04-01"):
        store.campaign_results(campaign, listed, raw)


# --- the synthetic bank simulates contacts -------------------------------------------------------


@pytest.mark.parametrize("group_customers", [3000, 1000], ids=["one group", "three groups"])
def test_simulated_contacts_raise_take_up_after_the_campaign_and_change_nothing_before(
    tmp_path, group_customers
):
    from crmscore.synthetic import BankConfig, generate_bank

    config = BankConfig(customers=3000, months=12, seed=4)
    generate = partial(generate_bank, progress=False, workers=1, group_customers=group_customers)
    generate(config, tmp_path / "plain")
    customers = pd.read_parquet(tmp_path / "plain" / "raw" / "customers")
    contacted = customers["customer_id"].iloc[::2]  # every other customer, a fixed half
    contacts = pd.DataFrame(
        {
            "customer_id": contacted,
            "product": "credit_card",
            "campaign_date": pd.Timestamp("2024-09-01"),
        }
    )
    generate(config, tmp_path / "campaign", contacts=contacts)

    def read(bank: str, table: str) -> pd.DataFrame:
        return pd.read_parquet(tmp_path / bank / "raw" / table)

    cutoff = pd.Timestamp("2024-09-01")
    for table in ("transactions", "interactions"):
        plain, campaign = read("plain", table), read("campaign", table)
        before = [t[t["ts"] < cutoff].reset_index(drop=True) for t in (plain, campaign)]
        pd.testing.assert_frame_equal(before[0], before[1])
    interactions = read("campaign", "interactions")
    contact_rows = interactions[
        (interactions["ts"] == cutoff + pd.Timedelta(hours=10))
        & (interactions["kind"] == "campaign_contact")
    ]
    # one contact per contacted customer still with the bank at the campaign date
    accounts = read("campaign", "accounts")
    open_then = accounts[pd.to_datetime(accounts["close_date"]).fillna(cutoff) >= cutoff]
    expected = set(contacted) & set(open_then["customer_id"])
    assert sorted(contact_rows["customer_id"]) == sorted(expected)

    def take_up(bank: str) -> tuple[float, float]:
        accounts = read(bank, "accounts")
        window = accounts[
            (accounts["product"] == "credit_card")
            & (pd.to_datetime(accounts["open_date"]) >= cutoff)
            & (pd.to_datetime(accounts["open_date"]) < cutoff + pd.DateOffset(months=3))
        ]
        opened = customers["customer_id"].isin(window["customer_id"])
        mask = customers["customer_id"].isin(contacted)
        return opened[mask].mean(), opened[~mask].mean()

    contacted_rate, others_rate = take_up("campaign")
    plain_contacted, plain_others = take_up("plain")
    assert contacted_rate > 1.5 * plain_contacted  # the contact works
    assert others_rate == pytest.approx(plain_others, abs=0.01)  # nobody else is touched


def test_generate_refuses_a_contact_file_it_cannot_use(tmp_path):
    from crmscore.cli import app

    bad = tmp_path / "contacts.csv"
    bad.write_text("customer_id,product\n1,mortgage\n")
    result = CliRunner().invoke(
        app, ["generate", "--customers", "20", "--months", "6", "--out", str(tmp_path / "x"),
              "--campaigns", str(bad), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "missing column(s) ['campaign_date']" in result.output
    get_settings.cache_clear()
