"""The serving rules without a server: access control, tiers, target-list queries, atomic output."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest

from crmscore.settings import ServingSettings
from features.online import FeatureLayout, FeatureRows
from serving.access import Pseudonymiser, authorize, check_roles, key_from_headers
from serving.batch import write_table
from serving.catalogue import cross_sell_products, holding_feature
from serving.errors import Forbidden, InvalidRequest, Unauthenticated
from serving.feature_source import rule_features
from serving.scoring import Predictions, Scores, decide
from serving.targets import TargetQuery, select_targets
from serving.tiers import CONTACT_EVERY_DAYS, assign_tiers, customer_value
from training.scorecard import Scorecard

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
    tiers = assign_tiers(
        value=columns["value"],
        best_propensity=columns["propensity"],
        churn=columns["churn"],
        pd_default=columns["pd"],
        has_credit=columns["credit"],
        has_deposits=columns["deposits"],
        active=columns["active"],
        settings=ServingSettings(),
    )
    return pd.DataFrame(
        {
            "tier": tiers.tier,
            "tier_reason": tiers.reason,
            "contact_every_days": tiers.contact_every_days,
        }
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


# --- the rules between the models' probabilities and a score: hand-made customers ------------

PRODUCTS = cross_sell_products()
#: A customer every rule lets through: active, consenting, holding nothing on offer, in ``mass``.
PLAIN = {
    "prod_n_accounts": 2.0,
    "credit_n_accounts": 1.0,
    "txn_deposit_balance": 1_000.0,
    "credit_balance": 0.0,
    "txn_card_spend_12m": 0.0,
    "marketing_consent": 1.0,
    "int_days_since_campaign_contact": np.nan,
    "segment": "mass",
    "region": "north",
    **{holding_feature(p): 0.0 for p in PRODUCTS},
}


def _rows(*customers: dict) -> FeatureRows:
    """Feature rows of hand-made customers: :data:`PLAIN` with each customer's changes."""
    frame = pd.DataFrame(
        [{"customer_id": i + 1, **PLAIN, **changes} for i, changes in enumerate(customers)]
    )
    return FeatureRows.from_frame(frame, FeatureLayout.of(rule_features()))


def _scores(rows: FeatureRows, pd_default: list[float], propensity: list[dict] | None = None,
            churn: float = 0.05, settings: ServingSettings | None = None) -> Scores:  # fmt: skip
    """:func:`decide` on given probabilities: ``propensity`` per customer by product (0.01 for
    the products not named)."""
    propensity = propensity or [{} for _ in pd_default]
    matrix = np.array([[given.get(p, 0.01) for p in PRODUCTS] for given in propensity])
    predictions = Predictions(
        churn=np.full(len(rows), churn),
        probability_of_default=np.asarray(pd_default, dtype=float),
        products=PRODUCTS,
        propensity=matrix,
    )
    return decide(predictions, rows, settings or ServingSettings(), Scorecard(), {})


def test_credit_products_are_not_offered_above_max_pd():
    """Suitability: a mortgage is the best offer by far, but not to a customer above max_pd."""
    rows = _rows({}, {}, {})
    scores = _scores(rows, [0.05, 0.10, 0.11], [{"mortgage": 0.5, "insurance": 0.2}] * 3)
    assert scores.next_best_product.tolist() == ["mortgage", "mortgage", "insurance"]
    assert scores.next_best_expected_value[0] == pytest.approx(0.5 * 1500 * 0.95, abs=0.01)
    assert scores.next_best_expected_value[2] == pytest.approx(0.2 * 200, abs=0.01)
    stricter = _scores(rows, [0.05], [{"mortgage": 0.5, "insurance": 0.2}],
                       settings=ServingSettings(max_pd=0.04))  # fmt: skip
    assert stricter.next_best_product[0] == "insurance"


def test_credit_offers_are_worth_their_margin_times_one_minus_pd():
    """A personal loan (400/yr) at PD 0.5 is worth less than wealth management (300/yr)."""
    rows = _rows({})
    offers = {"personal_loan": 0.10, "wealth_management": 0.10}
    risky = ServingSettings(max_pd=0.9)
    assert _scores(rows, [0.5], [offers], settings=risky).next_best_product[0] == (
        "wealth_management"
    )
    assert _scores(rows, [0.1], [offers], settings=risky).next_best_product[0] == "personal_loan"


def test_held_products_have_no_propensity_and_are_never_offered():
    rows = _rows({holding_feature("mortgage"): 1.0})
    scores = _scores(rows, [0.01], [{"mortgage": 0.9, "term_deposit": 0.2}])
    assert np.isnan(scores.propensity_of("mortgage")[0])
    assert scores.next_best_product[0] == "term_deposit"
    assert not np.isnan(scores.propensity_of("term_deposit")[0])


def test_lost_customers_get_no_offer_and_tier_d():
    rows = _rows({"prod_n_accounts": 0.0}, {"prod_n_accounts": np.nan})
    scores = _scores(rows, [0.01, 0.01], [{"mortgage": 0.9}] * 2)
    assert scores.next_best_product.tolist() == [None, None]
    assert np.isnan(scores.next_best_expected_value).all()
    assert scores.tiers.tier.tolist() == ["D", "D"] and "win-back" in scores.tiers.reason[0]


def test_equal_expected_values_offer_the_first_product_in_catalogue_order():
    # term deposit 150/yr x 0.2 = insurance 200/yr x 0.15 = 30
    rows = _rows({})
    scores = _scores(rows, [0.01], [{"term_deposit": 0.2, "insurance": 0.15}])
    assert PRODUCTS.index("term_deposit") < PRODUCTS.index("insurance")
    assert scores.next_best_product[0] == "term_deposit"


def test_credit_customers_hold_a_credit_product_and_a_high_pd_makes_them_tier_d():
    from serving.catalogue import credit_products

    card = credit_products()[0]
    rich = {"txn_deposit_balance": 100_000.0}  # value 1,500/yr: tier B unless a rule says D
    rows = _rows({**rich, holding_feature(card): 1.0}, rich, {**rich, holding_feature(card): 0.0})
    scores = _scores(rows, [0.30, 0.30, 0.30])
    assert scores.has_credit.tolist() == [True, False, False]
    assert scores.tiers.tier.tolist() == ["D", "B", "B"]
    assert "probability of default 0.30" in scores.tiers.reason[0]


def test_points_fall_as_pd_rises_on_the_configured_scale():
    scores = _scores(_rows({}, {}), [1 / 51, 1 / 101])  # odds 50:1 and 100:1
    assert scores.credit["score_points"].tolist() == pytest.approx([600.0, 620.0], abs=0.05)


#: One hand-made customer per target-list rule (product: insurance): their changes to
#: :data:`PLAIN`, their PD, the count label of the rule, and the query that applies only it.
TARGET_RULES = {
    "holds": ({holding_feature("insurance"): 1.0}, 0.01, "already holds it",
              {"exclude_holders": True}),
    "churned": ({"prod_n_accounts": 0.0}, 0.01, "churned (no open account)",
                {"exclude_churned": True}),
    "no consent": ({"marketing_consent": 0.0}, 0.01, "no marketing consent",
                   {"require_consent": True}),
    "consent unknown": ({"marketing_consent": np.nan}, 0.01, "no marketing consent",
                        {"require_consent": True}),
    "risky": ({}, 0.30, "probability of default above 0.1", {"max_pd": 0.1}),
    "contacted": ({"int_days_since_campaign_contact": 5.0}, 0.01,
                  "contacted in the last 30 days", {"contacted_within_days": 30}),
    "segment": ({"segment": "private"}, 0.01, "outside the segments asked for",
                {"segments": ("mass",)}),
    "region": ({"region": "south"}, 0.01, "outside the regions asked for",
               {"regions": ("north",)}),
    "low propensity": ({"insurance_propensity": 0.001}, 0.01, "propensity below 0.005",
                       {"min_propensity": 0.005}),
}  # fmt: skip
#: A query with every rule of :data:`TARGET_RULES` off.
NO_RULE = {"exclude_holders": False, "exclude_churned": False, "require_consent": False,
           "max_pd": None}  # fmt: skip


def _target_book() -> tuple[FeatureRows, Scores]:
    """Two eligible customers (ids 1, 2), then one customer per rule of :data:`TARGET_RULES`
    (ids 3, 4, ... in its order)."""
    changes = [{}, {}] + [dict(rule[0]) for rule in TARGET_RULES.values()]
    propensity = [{"insurance": 0.20}, {"insurance": 0.30}] + [
        {"insurance": c.pop("insurance_propensity", 0.10)} for c in changes[2:]
    ]
    rows = _rows(*changes)
    pd_default = [0.01, 0.01] + [rule[1] for rule in TARGET_RULES.values()]
    return rows, _scores(rows, pd_default, propensity)


def _listed(rows, scores, **query) -> tuple[list[int], dict[str, int]]:
    ranked, excluded = select_targets(
        TargetQuery(product="insurance", top=50, **query), rows, scores, ServingSettings()
    )
    return ranked["customer_id"].tolist(), excluded


def test_target_lists_apply_every_rule_and_count_what_each_removed():
    rows, scores = _target_book()
    every_rule = {k: v for rule in TARGET_RULES.values() for k, v in rule[3].items()}
    listed, excluded = _listed(rows, scores, **every_rule)
    assert listed == [2, 1]  # only the two eligible customers, highest propensity first
    expected: dict[str, int] = {}
    for _, _, label, _ in TARGET_RULES.values():
        expected[label] = expected.get(label, 0) + 1
    assert excluded == expected


@pytest.mark.parametrize("rule", list(TARGET_RULES))
def test_each_target_list_rule_on_its_own_excludes_its_customer(rule):
    rows, scores = _target_book()
    customer = 3 + list(TARGET_RULES).index(rule)
    listed, _ = _listed(rows, scores, **{**NO_RULE, **TARGET_RULES[rule][3]})
    assert customer not in listed and {1, 2} <= set(listed)
    everyone, _ = _listed(rows, scores, **NO_RULE)
    # without any rule the customer is listed; a holder never is: no propensity to rank by
    assert (customer in everyone) == (rule != "holds")


def test_target_lists_rank_by_propensity_then_customer_id():
    rows = _rows({}, {}, {})
    scores = _scores(rows, [0.01] * 3, [{"insurance": 0.2}, {"insurance": 0.3}, {"insurance": 0.2}])
    ranked, _ = select_targets(TargetQuery(product="insurance", top=2), rows, scores,
                               ServingSettings())  # fmt: skip
    assert ranked["customer_id"].tolist() == [2, 1] and ranked["rank"].tolist() == [1, 2]
    assert ranked["expected_value"].tolist() == pytest.approx([0.3 * 200, 0.2 * 200])


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
    model = SimpleNamespace(name="cross_sell", key="product", alignment=aligned)
    text = sentence("int_page_views_offered_3m", 5.0, 0.4, model, "mortgage")
    assert text == (
        "Views of the mortgage product page, last 3 months is 5: raises the chance of taking up "
        "the mortgage."
    )
    churn = SimpleNamespace(name="churn", key=None, alignment={})
    assert sentence("txn_days_since_salary", 62.0, 0.8, churn, None) == (
        "Days since the last salary credit is 62: raises churn risk."
    )
    assert sentence("txn_days_since_salary", None, -0.1, churn, None).endswith(
        "is unknown: lowers churn risk."
    )


def test_a_semicolon_inside_an_aside_does_not_cut_the_reason_sentence():
    from types import SimpleNamespace

    from features.views import groups
    from serving.explain import sentence

    churn = SimpleNamespace(name="churn", key=None, alignment={})
    # The description's only ";" sits inside its trailing "(after any posting ...; ...)" aside.
    assert sentence("txn_min_balance_1m", -120.0, 0.3, churn, None) == (
        "Lowest balance any current or savings account reached within the last 1 month is -120: "
        "raises churn risk."
    )
    for feature in (f for g in groups() for f in g.features):  # every declared description
        text = sentence(feature.name, 1.0, 0.1, churn, None)
        assert text.count("(") == text.count(")") and ";" not in text, (feature.name, text)


# --- reason codes for adverse-action notices --------------------------------------------------


def test_every_model_input_belongs_to_exactly_one_reason_family():
    from fnmatch import fnmatch

    from features.definitions import SERVICES, service_features
    from features.views import groups
    from serving.reasons import REASON_FAMILIES
    from training.alignment import PLACEHOLDER, alignment_templates

    codes = [family.code for family in REASON_FAMILIES]
    assert len(codes) == len(set(codes)) and len({f.text for f in REASON_FAMILIES}) == len(codes)
    declared = {g.name: g.feature_names for g in groups()}  # every feature a bank may have
    inputs = {
        name
        for service in SERVICES
        for names in service_features(service, declared).values()
        for name in names
    }
    inputs |= set(alignment_templates(sorted(inputs), list(cross_sell_products())))
    assert any(PLACEHOLDER in name for name in inputs)  # the aligned cross-sell inputs too
    for name in sorted(inputs):
        matching = [f.code for f in REASON_FAMILIES if any(fnmatch(name, p) for p in f.features)]
        assert len(matching) == 1, (name, matching)


def _policy(**changes):
    from serving.explain import ReasonPolicy

    return ReasonPolicy(**{"top_k": 4, "direction": "raises", **changes})


def _reasons(contribution: dict[str, float], **policy):
    from types import SimpleNamespace

    from serving.explain import reason_codes

    model = SimpleNamespace(name="credit_risk", key="product", alignment={})
    values = dict.fromkeys(contribution, 1.0)
    return reason_codes(model, values, contribution, _policy(**policy))


#: Contributions of a made-up credit customer: two delinquency features (C01), utilisation (C03),
#: age (A01), region (A04), the product key, and salary regularity lowering the risk (T01).
CONTRIBUTION = {
    "credit_worst_dpd_3m": 0.30,
    "credit_current_dpd": 0.25,
    "credit_utilisation": 0.40,
    "age_years": 0.90,
    "region": 0.20,
    "product": 2.00,
    "txn_salary_months_12m": -0.70,
    "txn_fees_3m": 0.05,
    "prod_n_accounts": 0.05,
    "int_app_logins_3m": 0.05,
}


def test_reasons_sum_a_family_and_name_its_leading_feature():
    reasons = _reasons(CONTRIBUTION)
    assert [r.code for r in reasons][:2] == ["A01", "C01"]  # 0.90, then 0.30 + 0.25 = 0.55
    delinquency = reasons[1]
    assert delinquency.contribution == pytest.approx(0.55)
    assert delinquency.feature == "credit_worst_dpd_3m"
    assert set(delinquency.features) == {"credit_worst_dpd_3m", "credit_current_dpd"}
    assert delinquency.text == "Payments past due on credit accounts"
    assert "raises the probability of default" in delinquency.sentence


def test_at_most_four_reasons_that_raise_the_score_by_default_ties_by_code():
    reasons = _reasons(CONTRIBUTION)
    assert len(reasons) == 4 and all(r.contribution > 0 for r in reasons)
    # 0.05 each for T09, P01 and I04: the tie goes to the lower code
    assert [r.code for r in reasons] == ["A01", "C01", "C03", "A04"]
    assert [r.code for r in _reasons(CONTRIBUTION, top_k=6)][4:] == ["I04", "P01"]
    assert [r.code for r in _reasons(CONTRIBUTION, direction="lowers")] == ["T01"]
    both = [r.code for r in _reasons(CONTRIBUTION, direction="both", top_k=3)]
    assert both == ["A01", "T01", "C01"]


def test_a_zero_contribution_is_neither_a_reason_nor_a_member_of_one():
    contribution = {
        "credit_worst_dpd_3m": 0.30,  # C01's one push
        "credit_current_dpd": 0.0,  # C01 too, but it did not push: not listed
        "txn_fees_3m": 0.0,  # T09's only member, no push: no T09 reason
        "age_years": 0.10,  # A01
    }
    reasons = _reasons(contribution, top_k=10)
    assert [(r.code, r.features) for r in reasons] == [
        ("C01", ["credit_worst_dpd_3m"]),
        ("A01", ["age_years"]),
    ]


def test_withheld_attributes_and_the_key_input_are_never_reasons():
    withheld = frozenset({"age_years", "region", "occupation"})
    codes = [r.code for r in _reasons(CONTRIBUTION, withheld=withheld, top_k=10)]
    assert codes == ["C01", "C03", "I04", "P01", "T09"]
    assert not {"A01", "A04"} & set(codes)
    assert all("product" not in r.features for r in _reasons(CONTRIBUTION, top_k=10))


def test_credit_risk_withholds_age_region_and_occupation_by_default():
    from serving.explain import ReasonPolicy

    policy = ReasonPolicy.of("credit_risk")
    assert policy.withheld >= {"age_years", "region", "occupation"}
    assert policy.top_k == 4 and policy.direction == "raises"
    assert ReasonPolicy.of("churn").withheld == frozenset()
