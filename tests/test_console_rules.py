"""The console's rules without a server: sessions, page permissions, form messages, the
worklist's due dates, chart ticks."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from starlette.datastructures import FormData

from serving.console.forms import SaveForm, TargetForm, parse_form
from serving.console.sessions import Identity, Sessions
from serving.errors import Forbidden, InvalidRequest, Unauthenticated

KEYS = {"k-mkt": "marketing", "k-mgr": "manager", "k-admin": "admin"}


def sessions(hours: float = 1.0) -> Sessions:
    return Sessions(KEYS, {"k-mgr": 17}, hours)


# --- sessions ------------------------------------------------------------------------------------


def test_a_session_cookie_identifies_its_key_and_holds_no_key():
    identity, cookie = sessions().login("k-mgr")
    assert identity == Identity("manager", 17)
    assert "k-mgr" not in cookie and "manager" not in cookie
    assert sessions().identify(cookie, {}) == identity  # any worker process verifies it


def test_tampered_foreign_or_expired_cookies_are_refused():
    _, cookie = sessions().login("k-mkt")
    token, _, signature = cookie.partition(".")
    for forged in (f"{token}.{'0' * len(signature)}", f"x{token}.{signature}", "garbage", "a.b"):
        with pytest.raises(Unauthenticated, match="log in again"):
            sessions().identify(forged, {})
    other = Sessions({"k-mkt": "marketing", "k-new": "risk"}, {}, 1.0)
    with pytest.raises(Unauthenticated):  # the keys changed: every session ends
        other.identify(cookie, {})
    _, short = sessions(hours=1 / 3600).login("k-mkt")
    time.sleep(1.1)
    with pytest.raises(Unauthenticated, match="expired"):
        sessions(hours=1 / 3600).identify(short, {})


def test_without_a_cookie_an_api_key_header_works_and_nothing_else():
    assert sessions().identify(None, {"x-api-key": "k-admin"}).role == "admin"
    with pytest.raises(Unauthenticated, match="not logged in"):
        sessions().identify(None, {})
    with pytest.raises(Unauthenticated, match="unknown API key"):
        sessions().login("k-nope")


def test_pages_per_role_and_managers_see_only_their_customers():
    marketing, manager, risk = Identity("marketing"), Identity("manager", 17), Identity("risk")
    assert marketing.pages == {"campaigns", "portfolio"}
    assert manager.pages == {"worklist", "customers"}
    assert risk.pages == {"customers", "models", "portfolio"}
    assert Identity("service").pages == frozenset()
    with pytest.raises(Forbidden, match="role 'marketing' may not open customers"):
        marketing.require("customers")
    assert manager.may_see_manager(17) and not manager.may_see_manager(18)
    assert not manager.may_see_manager(None)
    assert risk.may_see_manager(18) and risk.may_see_manager(None)


# --- forms ---------------------------------------------------------------------------------------


def form(**values) -> FormData:
    items = []
    for key, value in values.items():
        items += [(key, v) for v in value] if isinstance(value, list) else [(key, value)]
    return FormData(items)


def test_a_submitted_form_becomes_the_query_unticked_boxes_false():
    parsed = parse_form(
        TargetForm,
        form(submitted="1", product="mortgage", top="20", exclude_holders="on",
             segments=["mass", "affluent"], exclude_pd_above="", min_propensity="0.05"),
    )  # fmt: skip
    assert (parsed.top, parsed.exclude_holders, parsed.require_consent) == (20, True, False)
    assert parsed.segments == ["mass", "affluent"] and parsed.exclude_pd_above is None
    first_visit = parse_form(TargetForm, form(product="mortgage"))
    assert first_visit.require_consent and first_visit.exclude_churned  # defaults


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"product": "mortgage", "top": "many"}, "top: Input should be a valid integer"),
        ({"product": "mortgage", "top": "0"}, "top: Input should be greater than or equal to 1"),
        ({"product": "mortgage", "exclude_pd_above": "2"}, "exclude_pd_above: Input should be"),
        ({"product": "mortgage", "name": "  "}, "name: Field required"),
        ({"product": "mortgage", "name": "x", "control_share": "0.9"}, "control_share: Input"),
        ({"product": "mortgage", "name": "x", "campaign_date": "soon"}, "campaign_date: Input"),
    ],
)
def test_bad_values_are_refused_naming_the_field(values, message):
    with pytest.raises(InvalidRequest) as error:
        parse_form(SaveForm, form(**values))
    assert str(error.value).startswith(message)
    assert error.value.field == message.split(":")[0]


def test_business_checks_are_the_endpoints():
    from crmscore.settings import ServingSettings

    parsed = parse_form(TargetForm, form(product="gold_bars"))
    with pytest.raises(InvalidRequest, match="unknown product 'gold_bars'"):
        parsed.query(ServingSettings())
    assert parse_form(TargetForm, form(product="mortgage")).query(ServingSettings()).max_pd == 0.10


# --- worklist ------------------------------------------------------------------------------------


def test_due_this_week_by_tier_cadence_sorted_by_value_at_risk():
    from serving.console.book import Book
    from serving.console.worklist import due_this_week

    # tier cadence 7 (A/B), 14 (C), 30 (D); days since the manager's last call
    rows = [
        # id, manager, tier days, last call, value, churn, active
        (1, 5, 7, 1.0, 1000.0, 0.10, True),  # called yesterday, weekly: due in 6 days
        (8, 5, 7, 0.0, 8000.0, 0.10, True),  # called today, weekly: due next week
        (2, 5, 14, 6.0, 2000.0, 0.10, True),  # due in 8 days: not this week
        (3, 5, 14, 7.0, 3000.0, 0.10, True),  # due in 7 days: not this week (days 0..6)
        (4, 5, 30, None, 100.0, 0.50, True),  # never called: due now
        (5, 5, 30, 40.0, 5000.0, 0.20, False),  # left the bank: win-back, not a visit
        (6, 9, 7, 30.0, 9000.0, 0.90, True),  # another manager's
        (7, 5, 14, 8.0, 400.0, 0.05, True),  # due in 6 days
    ]
    ids, manager, cadence, since, value, churn, active = map(list, zip(*rows, strict=True))
    scores = pd.DataFrame(
        {"customer_id": ids, "manager_id": manager, "contact_every_days": cadence,
         "value": value, "churn_probability": churn, "active": active},
    )  # fmt: skip
    features = pd.DataFrame({"int_days_since_manager_call": pd.array(since, dtype=float)})
    book = Book(
        champions=None, snapshot=pd.Timestamp("2026-01-01"), rows=None, features=features,
        scored=None, scores=scores, history=None, interactions=None, seconds=0.0,
    )  # fmt: skip
    due = due_this_week(book, 5)
    assert due["customer_id"].tolist() == [1, 4, 7]  # value at risk 100, 50, 20
    assert due["value_at_risk"].tolist() == [100.0, 50.0, 20.0]
    assert [str(d) for d in due["due_on"]] == ["2026-01-07", "2026-01-01", "2026-01-07"]


# --- charts --------------------------------------------------------------------------------------


def test_chart_ticks_are_round_and_cover_the_range():
    from serving.console.charts import nice_ticks

    assert nice_ticks(0, 1, 4) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(4600, 4950, 4) == [4600, 4700, 4800, 4900, 5000]
    assert nice_ticks(-3.4, -2.6, 4) == [-3.4, -3.2, -3.0, -2.8, -2.6]
    assert nice_ticks(2, 2)[0] <= 2 <= nice_ticks(2, 2)[-1]  # a flat line still gets an axis
