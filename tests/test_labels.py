"""Labels are point-in-time: eligibility before the snapshot, outcome inside the horizon only."""

from datetime import date

import pandas as pd
import pytest

from training.labels import build_labels, observation_end

D = pd.Timestamp


def _write(raw, table, frame):
    (raw / table).mkdir(parents=True)
    frame.to_parquet(raw / table / "part-0.parquet", index=False)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    raw = tmp_path_factory.mktemp("bank") / "raw"
    accounts = [
        # id, customer, product, open, close
        (1, 1, "current", "2024-01-05", "2024-07-10"),  # churns in July
        (2, 2, "current", "2024-01-05", "2024-05-20"),  # churned before June
        (3, 3, "current", "2024-01-05", None),
        (4, 3, "savings", "2024-01-05", "2024-06-15"),  # one of two accounts closes: no churn
        (5, 3, "term_deposit", "2024-02-01", None),
        (6, 3, "credit_card", "2024-07-01", None),  # cross-sell inside the window
        (7, 4, "current", "2024-01-05", "2024-09-15"),  # churns after a June horizon
        (8, 5, "current", "2024-06-01", None),  # opened on the snapshot: not yet a customer
        (9, 6, "current", "2024-02-01", "2024-06-01"),  # closes on the snapshot day itself
        (10, 7, "current", "2024-01-05", None),
        (11, 7, "mortgage", "2024-05-15", None),  # already held
        (12, 7, "personal_loan", "2024-05-20", "2024-05-30"),  # opened before the snapshot
        (13, 7, "insurance", "2024-09-10", None),  # opened after the horizon
        (20, 10, "credit_card", "2024-01-10", None),
        (21, 11, "personal_loan", "2024-01-10", None),
        (22, 12, "credit_card", "2024-01-10", None),
    ]
    frame = pd.DataFrame(
        accounts, columns=["account_id", "customer_id", "product", "open_date", "close_date"]
    )
    for col in ("open_date", "close_date"):
        frame[col] = pd.to_datetime(frame[col]).dt.date
    frame["maturity_date"] = None
    frame["limit_amount"] = 0.0
    _write(raw, "accounts", frame)
    _write(
        raw,
        "transactions",
        pd.DataFrame(
            {
                "transaction_id": [1, 2],
                "account_id": [3, 3],
                "ts": [D("2024-01-06 10:00"), D("2025-12-20 10:00")],
                "amount": [1.0, 1.0],
                "balance_after": [1.0, 2.0],
                "type": ["transfer_in"] * 2,
                "channel": ["mobile"] * 2,
                "merchant_category": [None, None],
            }
        ),
    )
    months = pd.date_range("2024-01-31", "2025-12-31", freq="ME")
    status = pd.DataFrame(
        [(acc, m.date(), 100.0, 0) for acc in (20, 21, 22) for m in months],
        columns=["account_id", "month", "balance", "days_past_due"],
    )
    bad = {(20, "2024-08-31"): 90, (21, "2024-02-29"): 95, (22, "2025-03-31"): 90}
    for (acc, month), dpd in bad.items():
        row = (status.account_id == acc) & (status.month == D(month).date())
        status.loc[row, "days_past_due"] = dpd
    _write(raw, "credit_status", status)
    return raw


def _labels(frame, snapshot, *keys):
    rows = frame[frame.event_timestamp == D(snapshot)]
    index = ["customer_id", *keys] if keys else "customer_id"
    return rows.set_index(index)["label"].to_dict()


def test_observation_end_is_the_month_after_the_data(raw_dir):
    assert observation_end(raw_dir) == date(2026, 1, 1)


def test_the_data_span_follows_new_raw_files(raw_dir, tmp_path):
    """The span is kept between calls (each reads every transaction), but only for the same
    files: a month more of data moves the end."""
    import shutil

    from training.labels import observation_start

    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    assert (observation_start(raw), observation_end(raw)) == (date(2024, 1, 1), date(2026, 1, 1))
    later = pd.read_parquet(raw / "transactions").assign(
        transaction_id=[3, 4], ts=[D("2023-12-30 09:00"), D("2026-01-03 09:00")]
    )
    later.to_parquet(raw / "transactions" / "part-1.parquet", index=False)
    # the new file: a December 2023 and a January 2026 posting
    assert (observation_start(raw), observation_end(raw)) == (date(2023, 12, 1), date(2026, 2, 1))


def test_churn_labels_are_point_in_time(raw_dir):
    labels = build_labels("churn", [date(2024, 4, 1), date(2024, 5, 1), date(2024, 6, 1)], raw_dir)
    assert list(labels.columns) == ["customer_id", "event_timestamp", "label"]
    assert labels.customer_id.dtype == "int64" and labels.label.dtype == "int64"
    june = _labels(labels, "2024-06-01")
    # 2 churned before June and 5 only joined on the snapshot day: not eligible.
    assert june == {1: 1, 3: 0, 4: 0, 6: 1, 7: 0, 10: 0, 11: 0, 12: 0}
    assert _labels(labels, "2024-05-01")[1] == 1  # July 10 is inside [May 1, Aug 1)
    assert _labels(labels, "2024-04-01")[1] == 0  # ...but not inside [Apr 1, Jul 1)
    assert _labels(labels, "2024-04-01")[2] == 1  # closes May 20: inside [Apr 1, Jul 1)


def test_cross_sell_excludes_held_products_and_counts_only_the_window(raw_dir):
    labels = build_labels("cross_sell", [date(2024, 6, 1)], raw_dir)
    got = _labels(labels, "2024-06-01", "product")
    assert got[(3, "credit_card")] == 1
    assert (3, "term_deposit") not in got  # already held
    assert (7, "mortgage") not in got
    assert got[(7, "personal_loan")] == 0  # opened before the snapshot: not a new sale
    assert got[(7, "insurance")] == 0  # opened after the horizon
    assert (5, "credit_card") not in got  # not a customer yet
    assert labels.groupby("customer_id").size()[1] == 6


def test_default_labels_use_twelve_months_and_exclude_current_defaulters(raw_dir):
    snapshots = [date(2024, 3, 1), date(2024, 4, 1), date(2025, 1, 1), date(2025, 2, 1)]
    labels = build_labels("credit_risk", snapshots, raw_dir)
    assert _labels(labels, "2024-03-01") == {10: 1, 12: 0}  # 11 is 90+ days past due already
    assert _labels(labels, "2024-04-01") == {10: 1, 11: 0, 12: 1}
    # 2025-02-01 + 12 months runs past the data: not fully labelled, so dropped.
    kept = sorted(labels.event_timestamp.unique())
    assert kept == [D("2024-03-01"), D("2024-04-01"), D("2025-01-01")]


def test_bad_requests_fail_clearly(raw_dir, tmp_path):
    with pytest.raises(ValueError, match="month starts"):
        build_labels("churn", [date(2024, 6, 15)], raw_dir)
    with pytest.raises(ValueError, match="unknown model"):
        build_labels("upsell", [date(2024, 6, 1)], raw_dir)
    with pytest.raises(FileNotFoundError, match="accounts"):
        build_labels("churn", [date(2024, 6, 1)], tmp_path)


def test_a_row_cap_keeps_a_stable_sample_of_whole_customers(raw_dir):
    snapshots = [date(2024, 4, 1), date(2024, 5, 1), date(2024, 6, 1)]
    full = build_labels("cross_sell", snapshots, raw_dir)
    capped = build_labels("cross_sell", snapshots, raw_dir, max_rows=len(full) // 2)
    assert full.attrs["customer_share"] == 1.0
    assert capped.attrs["customer_share"] == pytest.approx(0.5, abs=1 / len(full))
    assert 0 < len(capped) < len(full)
    kept = set(capped.customer_id)
    # Every row of a kept customer stays, and no one else's: whole customers, not rows.
    whole = full[full.customer_id.isin(kept)].reset_index(drop=True)
    pd.testing.assert_frame_equal(capped.reset_index(drop=True), whole)
    again = build_labels("cross_sell", snapshots, raw_dir, max_rows=len(full) // 2)
    assert set(again.customer_id) == kept  # the same customers on every run


# --- the bank's own outcomes --------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_outcomes(raw_dir, tmp_path_factory):
    """The same bank plus an outcomes table (a copy: the derived tests keep theirs)."""
    import shutil

    raw = tmp_path_factory.mktemp("outcomes") / "raw"
    shutil.copytree(raw_dir, raw)
    rows = [
        # id, customer, account, outcome, product, date, happened
        (1, 10, 20, "default", None, "2024-05-15", None),  # the bank's own default day
        (2, 12, 22, "default", None, "2024-03-10", None),  # defaulted before April
        (3, 3, None, "take_up", "credit_card", "2024-07-01", None),
        (4, 1, None, "response", None, "2024-06-10", True),  # decided cases: a campaign's
        (5, 3, None, "response", None, "2024-06-12", False),  # contacts and whether they
        (6, 7, None, "response", None, "2024-07-03", True),  # responded
        (7, 7, None, "mixed", None, "2024-07-03", True),
        (8, 7, None, "mixed", None, "2024-07-04", None),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "outcome_id",
            "customer_id",
            "account_id",
            "outcome",
            "product",
            "date",
            "happened",
        ],
    )
    frame["account_id"] = frame["account_id"].astype("Int64")
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    frame["happened"] = frame["happened"].astype("boolean")
    _write(raw, "outcomes", frame)
    return raw


def test_default_events_from_the_bank_replace_days_past_due(with_outcomes):
    from models import get_definition
    from training.labels import label_source

    definition = get_definition("credit_risk")
    assert label_source(definition, with_outcomes).kind == "events"
    labels = build_labels(definition, [date(2024, 3, 1), date(2024, 4, 1)], with_outcomes)
    assert labels.attrs["label_source"].kind == "events"
    # 10 defaults on 2024-05-15: inside both windows. 11's 95 days past due no longer count
    # (the bank's register is the label). 12 defaulted 2024-03-10: a positive at March, and at
    # April already in default (an event in the 12 months before): not eligible.
    assert _labels(labels, "2024-03-01") == {10: 1, 11: 0, 12: 1}
    assert _labels(labels, "2024-04-01") == {10: 1, 11: 0}


def test_take_up_events_label_the_offers_population(with_outcomes):
    labels = build_labels("cross_sell", [date(2024, 6, 1)], with_outcomes)
    got = _labels(labels, "2024-06-01", "product")
    assert got[(3, "credit_card")] == 1  # the bank's event
    assert got[(7, "insurance")] == 0  # only events count, not account openings
    assert (3, "term_deposit") not in got  # already held: not in the population


def test_decided_cases_are_rows_at_their_own_dates(with_outcomes, monkeypatch):
    from crmscore.settings import get_settings
    from models import get_definition

    monkeypatch.setenv(
        "CRMSCORE_TRAINING__CUSTOM_MODELS",
        '{"response": {"outcome": "response", "description": "Responds to a campaign."}}',
    )
    get_settings.cache_clear()
    try:
        definition = get_definition("response")
        labels = build_labels(definition, [date(2024, 6, 1), date(2024, 7, 1)], with_outcomes)
        only_june = build_labels(definition, [date(2024, 6, 1)], with_outcomes)
    finally:
        get_settings.cache_clear()
    assert labels.attrs["label_source"].kind == "cases"
    assert labels[["customer_id", "event_timestamp", "label"]].values.tolist() == [
        [1, D("2024-06-10"), 1],
        [3, D("2024-06-12"), 0],
        [7, D("2024-07-03"), 1],
    ]
    assert only_june["customer_id"].tolist() == [1, 3]  # the case months asked for


def test_an_outcome_mixing_events_and_cases_is_refused(with_outcomes, monkeypatch):
    from crmscore.settings import get_settings
    from models import get_definition
    from training.labels import label_source

    monkeypatch.setenv(
        "CRMSCORE_TRAINING__CUSTOM_MODELS",
        '{"mixed": {"outcome": "mixed", "description": "Both kinds."}}',
    )
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="mixes events .* and decided cases"):
            label_source(get_definition("mixed"), with_outcomes)
    finally:
        get_settings.cache_clear()


def test_derived_labels_can_be_forced_and_outcomes_required(with_outcomes, raw_dir, monkeypatch):
    from crmscore.settings import get_settings
    from models import get_definition
    from training.labels import label_source

    credit = get_definition("credit_risk")
    monkeypatch.setenv("CRMSCORE_TRAINING__LABEL_SOURCE", '{"credit_risk": "derived"}')
    get_settings.cache_clear()
    assert label_source(credit, with_outcomes).kind == "derived"
    monkeypatch.setenv("CRMSCORE_TRAINING__LABEL_SOURCE", '{"credit_risk": "outcomes"}')
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="holds no 'default' rows"):
            label_source(credit, raw_dir)  # no outcomes table at all
    finally:
        get_settings.cache_clear()


def test_derived_defaults_without_credit_status_say_what_to_do(raw_dir, tmp_path):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    shutil.rmtree(raw / "credit_status")
    with pytest.raises(ValueError, match="no credit_status table .*an outcomes table"):
        build_labels("credit_risk", [date(2024, 3, 1)], raw)
