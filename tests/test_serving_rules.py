"""The serving rules without a server: access control, tiers, target-list queries, atomic output."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd
import pytest

from crmscore.settings import ServingSettings
from serving.access import Pseudonymiser, authorize, check_roles, key_from_headers
from serving.batch import write_table
from serving.errors import Forbidden, InvalidRequest, Unauthenticated
from serving.targets import TargetQuery
from serving.tiers import CONTACT_EVERY_DAYS, assign_tiers, customer_value

KEYS = {"k-mkt": "marketing", "k-risk": "risk", "k-svc": "service"}


def test_keys_map_to_roles_and_roles_to_endpoints():
    assert authorize({"x-api-key": "k-mkt"}, "targets", KEYS) == "marketing"
    assert authorize({"authorization": "Bearer k-risk"}, "explain", KEYS) == "risk"
    with pytest.raises(Unauthenticated, match="missing API key"):
        authorize({}, "score", KEYS)
    with pytest.raises(Unauthenticated, match="unknown API key"):
        authorize({"x-api-key": "k-mk"}, "score", KEYS)
    with pytest.raises(Forbidden, match="'marketing' may not call /explain"):
        authorize({"x-api-key": "k-mkt"}, "explain", KEYS)
    with pytest.raises(Forbidden):
        authorize({"x-api-key": "k-svc"}, "targets", KEYS)
    assert key_from_headers({"authorization": "Basic abc"}) is None


def test_unknown_roles_in_settings_are_refused():
    with pytest.raises(ValueError, match="markting"):
        check_roles({"k": "markting"})


def test_manager_keys_need_exactly_their_manager_ids():
    check_roles({"k-m": "manager", "k-r": "risk"}, {"k-m": 7})
    with pytest.raises(ValueError, match="lacks 1 key"):
        check_roles({"k-m": "manager"}, {})
    with pytest.raises(ValueError, match="not 'manager'") as error:
        check_roles({"k-m": "manager", "k-r": "risk"}, {"k-m": 7, "k-r": 8})
    assert "k-r" not in str(error.value)  # a key is a secret: never in a message


def test_pseudonyms_are_keyed_hmacs_not_ids():
    pseudonymise = Pseudonymiser(b"secret")
    expected = hmac.new(b"secret", b"42", hashlib.sha256).hexdigest()[:16]
    assert pseudonymise(42) == expected != "42"
    assert Pseudonymiser(b"other")(42) != expected


def _tiers(**columns) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    return assign_tiers(
        value=frame["value"],
        best_propensity=frame["propensity"],
        churn=frame["churn"],
        pd_default=frame["pd"],
        has_credit=frame["credit"],
        has_deposits=frame["deposits"],
        active=frame["active"],
        settings=ServingSettings(),
    )


def test_tiers_follow_the_documented_rules_in_order():
    tiers = _tiers(
        value=[5000.0, 5000.0, 800.0, 100.0, 100.0, 5000.0, 5000.0, 5000.0],
        propensity=[0.10, 0.01, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10],
        churn=[0.05, 0.05, 0.05, 0.05, 0.05, 0.50, 0.05, 0.05],
        pd=[0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.40, 0.40],
        credit=[True, True, True, True, True, True, True, False],
        deposits=[True, True, True, True, False, True, True, True],
        active=[True] * 8,
    )
    assert tiers["tier"].tolist() == ["A", "B", "B", "C", "D", "D", "D", "A"]
    assert "churn probability 0.50" in tiers.loc[5, "tier_reason"]
    assert "probability of default 0.40" in tiers.loc[6, "tier_reason"]
    assert tiers["contact_every_days"].tolist() == [CONTACT_EVERY_DAYS[t] for t in tiers["tier"]]
    lost = _tiers(
        value=[9000.0], propensity=[0.5], churn=[0.0], pd=[0.0], credit=[False], deposits=[True],
        active=[False],
    )  # fmt: skip
    assert lost.loc[0, "tier"] == "D" and "win-back" in lost.loc[0, "tier_reason"]


def test_value_is_margin_on_holdings():
    features = pd.DataFrame(
        {"txn_deposit_balance": [10_000.0, -50.0], "credit_balance": [2_000.0, None],
         "txn_card_spend_12m": [1_000.0, 0.0]}
    )  # fmt: skip
    value = customer_value(features, ServingSettings())
    assert value.tolist() == pytest.approx([10_000 * 0.015 + 2_000 * 0.03 + 1_000 * 0.01, 0.0])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (TargetQuery(product="car", top=5), "product"),
        (TargetQuery(product="mortgage", top=0), "top"),
        (TargetQuery(product="mortgage", top=5, max_pd=1.5), "max_pd"),
        (TargetQuery(product="mortgage", top=5, contacted_within_days=-1), "contacted_within_days"),
        (TargetQuery(product="mortgage", top=5, segments=("vip",)), "segments"),
        (TargetQuery(product="mortgage", top=5, regions=("mars",)), "regions"),
    ],
)
def test_target_queries_name_the_bad_field(query, field):
    with pytest.raises(InvalidRequest) as error:
        query.validate()
    assert error.value.field == field


def test_outputs_are_atomic_and_typed(tmp_path):
    frame = pd.DataFrame({"customer_id": [1, 2], "reasons": [["a", "b"], []]})
    write_table(frame, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines()[1] == "1,a | b"
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        write_table(frame, tmp_path / "out.xlsx")
    unwritable = pd.DataFrame({"x": [object()]})
    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises, nothing may remain
        write_table(unwritable, tmp_path / "bad.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_chunked_output_appears_whole_or_not_at_all(tmp_path):
    from serving.batch import AtomicTableWriter

    out = tmp_path / "scores.parquet"
    chunks = [
        pd.DataFrame({"customer_id": [1, 2], "next_best_product": [None, None]}),
        pd.DataFrame({"customer_id": [3], "next_best_product": ["mortgage"]}),
    ]
    with AtomicTableWriter(out) as table:
        for chunk in chunks:
            table.write(chunk)
            assert not out.exists()  # nothing under the output name until the end
    written = pd.read_parquet(out)
    assert written["customer_id"].tolist() == [1, 2, 3]
    assert written["next_best_product"].tolist() == [None, None, "mortgage"]

    before = out.read_bytes()
    with pytest.raises(RuntimeError, match="disk on fire"), AtomicTableWriter(out) as table:
        table.write(chunks[0])
        raise RuntimeError("disk on fire")
    assert out.read_bytes() == before  # yesterday's file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]


def test_a_writer_leaves_a_running_writers_file_alone(tmp_path):
    import subprocess

    from serving.batch import write_table

    other = subprocess.Popen(["sleep", "30"])  # another run writing the same output right now
    try:
        running = tmp_path / f".scores.parquet.{other.pid}.partial"
        running.write_bytes(b"in progress")
        write_table(pd.DataFrame({"customer_id": [1]}), tmp_path / "scores.parquet")
        assert running.exists()
    finally:
        other.kill()
        other.wait()
    write_table(pd.DataFrame({"customer_id": [1]}), tmp_path / "scores.parquet")
    assert not running.exists()  # its writer is gone: the next run clears it


def test_reason_sentences_read_like_the_feature_store_descriptions():
    from types import SimpleNamespace

    from serving.explain import sentence

    aligned = {"int_page_views_offered_3m": {"mortgage": "int_page_views_mortgage_3m"}}
    model = SimpleNamespace(name="cross_sell", scoring_model=SimpleNamespace(alignment=aligned))
    text = sentence("int_page_views_offered_3m", 5.0, 0.4, model, "mortgage")
    assert text == (
        "Views of the mortgage product page, last 3 months is 5: raises the chance of opening a "
        "mortgage."
    )
    churn = SimpleNamespace(name="churn", scoring_model=SimpleNamespace())
    assert sentence("txn_days_since_salary", 62.0, 0.8, churn, None) == (
        "Days since the last salary credit is 62: raises churn risk."
    )
    assert sentence("txn_days_since_salary", None, -0.1, churn, None).endswith(
        "is unknown: lowers churn risk."
    )
