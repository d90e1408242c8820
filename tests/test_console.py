"""The web console in a real browser: headless chromium (Playwright) against a real ``bentoml
serve`` on a small generated bank with trained champions.

Every page loads for the role that may open it; a campaign is built, previewed, saved and
downloaded (CSV and Parquet, control group flagged); a customer lookup shows reason codes and
waterfalls and is audited; roles without access are refused. Screenshots of every page go to
``tests/screenshots/`` (git-ignored) for a reviewer to look at.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from crmscore.settings import PROJECT_ROOT, get_settings
from tests.browser import chromium
from tests.stacks import built_stack, stack_env
from tests.test_serving import start_server, stop_server

pytestmark = pytest.mark.slow

KEYS = {
    "k-mkt": "marketing",
    "k-risk": "risk",
    "k-admin": "admin",
    "k-svc": "service",
    "k-mgr": "manager",
}
SHOTS = PROJECT_ROOT / "tests" / "screenshots"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    env = stack_env(root, CRMSCORE_TRAINING__SHAP_ROWS="100")
    with built_stack(
        root, env, customers=1200, seed=5, materialise=True, lgbm_overrides={"n_estimators": 60}
    ):
        customers = pd.read_parquet(root / "data" / "raw" / "customers")
    manager = int(customers["manager_id"].dropna().value_counts().index[0])
    served = {
        **os.environ,
        **env,
        "CRMSCORE_SERVING__API_KEYS": json.dumps(KEYS),
        "CRMSCORE_SERVING__MANAGER_IDS": json.dumps({"k-mgr": manager}),
        "CRMSCORE_SERVING__AUDIT_KEY": "console-audit",
        "CRMSCORE_CONSOLE__HISTORY_SNAPSHOTS": "3",
        "CRMSCORE_CONSOLE__PAGE_SIZE": "20",
    }
    yield {"root": root, "env": served, "customers": customers, "manager": manager}


@pytest.fixture(scope="module")
def server(stack):
    log = stack["root"] / "server.log"
    process, url = start_server(stack["env"], log)
    deadline = time.monotonic() + 180
    home = f"{url}/console/portfolio"
    while time.monotonic() < deadline:  # the customer book is scored in the background
        if httpx.get(home, headers={"X-API-Key": "k-admin"}, timeout=30).status_code == 200:
            break
        time.sleep(1)
    yield {"url": url, "log": log, **stack}
    stop_server(process)


@pytest.fixture(scope="module")
def browser(server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as context:
        yield context


def login(browser, server, key: str):
    """A fresh page logged in through the login form with ``key``."""
    browser.clear_cookies()
    page = browser.new_page()
    page.goto(f"{server['url']}/console/")
    assert "/console/login" in page.url  # not logged in: the login page
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    return page


def shot(page, name: str) -> None:
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def run_cli(args: list[str], env: dict[str, str]):
    """``crmscore ARGS`` in-process with the settings environment ``env``."""
    from crmscore.cli import app

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, args, env=env)
    finally:
        get_settings.cache_clear()


def audit_lines(server) -> list[dict]:
    lines = [line for line in server["log"].read_text().splitlines() if " AUDIT " in line]
    return [json.loads(line.split(" AUDIT ", 1)[1]) for line in lines]


# --- login and every page ------------------------------------------------------------------------


def test_login_sets_a_strict_httponly_session_cookie_and_every_page_loads(browser, server):
    page = login(browser, server, "k-admin")
    assert page.url.rstrip("/").endswith("/console")
    (cookie,) = [c for c in browser.cookies() if c["name"] == "crmscore_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert "k-admin" not in cookie["value"]  # the key itself never reaches the browser
    shot(page, "home")
    customer = int(server["customers"]["customer_id"].iloc[0])
    for path, heading in [
        ("campaigns", "Campaign builder"),
        (f"customers/{customer}", f"Customer {customer}"),
        ("worklist", "Worklist"),
        ("portfolio", "Portfolio"),
        ("models", "Champions"),
    ]:
        response = page.goto(f"{server['url']}/console/{path}")
        assert response.status == 200, path
        assert heading in page.inner_text("h1"), path
        shot(page, path.split("/")[0])
    page.goto(f"{server['url']}/console/portfolio")
    assert page.locator("svg.chart").count() == 6  # distributions, tier shares, 3 moves
    page.goto(f"{server['url']}/console/models")
    assert page.get_by_text("not generated yet").count() == 3  # no monitoring report yet
    document = page.get_by_role("link", name="model_document.html").first
    opened = httpx.get(
        f"{server['url']}{document.get_attribute('href')}", headers={"X-API-Key": "k-admin"}
    )
    assert opened.status_code == 200 and "html" in opened.headers["content-type"]
    assert opened.headers["content-security-policy"] == "sandbox"  # runs no script here
    report = _log_monitoring_report(server)
    page.goto(f"{server['url']}/console/models")
    assert page.get_by_role("link", name=report).count() == 3  # one report for every model
    assert page.get_by_text("not generated yet").count() == 0
    page.goto(f"{server['url']}/console/portfolio?by=branch")
    assert "branch" in page.inner_text("table.list th")


def _log_monitoring_report(server) -> str:
    """A report in the monitoring experiment, as ``crmscore monitor`` logs it (into the experiment
    it creates, so the artefact is kept beside the stack's database)."""
    import mlflow

    from tests.stacks import settings_env
    from training.registry import configure_mlflow, ensure_experiment

    name = "monitoring_2026-01-01.html"
    with settings_env(server["env"]):
        experiment_id = ensure_experiment(configure_mlflow(), get_settings().monitoring.experiment)
        with mlflow.start_run(experiment_id=experiment_id, run_name="monitor-2026-01-01"):
            mlflow.log_text("<h1>monitoring</h1>", name)
    return name


# --- campaigns -----------------------------------------------------------------------------------


def test_a_campaign_is_built_saved_and_downloaded_with_its_control_group(browser, server):
    page = login(browser, server, "k-mkt")
    page.goto(f"{server['url']}/console/campaigns")
    page.select_option("select[name=product]", "credit_card")
    page.fill("input[name=top]", "40")
    page.click("button[name=preview]")
    rows = page.locator("table.list tbody tr")
    assert rows.count() == 20  # one page of the 40
    assert "raises" in rows.first.inner_text() or "lowers" in rows.first.inner_text()
    assert page.get_by_role("link", name="next →").count() == 2
    shot(page, "campaign-preview")
    page.fill("input[name=name]", "cards, January")
    page.fill("input[name=control_share]", "0.25")
    page.fill("input[name=seed]", "3")
    page.click("button.primary")
    page.wait_for_url("**/console/campaigns/2*")
    assert "cards, January" in page.inner_text("h1")
    assert "window runs to" in page.inner_text("main")  # no results before the window
    shot(page, "campaign-saved")
    campaign_id = page.url.rsplit("/", 1)[1]

    with page.expect_download() as csv_download:
        page.click("text=CSV")
    listed = pd.read_csv(csv_download.value.path())
    assert len(listed) == 40 and (listed["group"] == "control").sum() == 10
    assert (listed["contacted"] == (listed["group"] == "target")).all()
    assert listed["reasons"].str.len().gt(0).all()
    with page.expect_download() as parquet_download:
        page.click("text=Parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(parquet_download.value.path())[["customer_id", "group"]],
        listed[["customer_id", "group"]],
    )
    downloads = [a for a in audit_lines(server) if a["endpoint"] == "console/campaigns"]
    assert any(len(a["customers"]) == 40 for a in downloads)  # a download audits every id

    env = {k: v for k, v in server["env"].items() if k.startswith("CRMSCORE_")}
    listing = run_cli(["campaign", "list"], env)
    assert campaign_id in listing.output, listing.output
    pending = run_cli(["campaign", "results", campaign_id], env)
    assert pending.exit_code == 1 and "results once the window has passed" in pending.output
    server["campaign_id"] = campaign_id


def test_campaign_results_once_the_simulated_window_has_passed(browser, server, tmp_path):
    """The bank generated 3 months further with the campaign's contacts: results on the page
    and from the CLI, counted from the raw accounts."""
    campaign_id = server.get("campaign_id") or pytest.skip("needs the saved campaign")
    listed = Path(server["env"]["CRMSCORE_DATA_DIR"]) / "campaigns" / campaign_id / "list.parquet"
    later = tmp_path / "later"
    env = {k: v for k, v in server["env"].items() if k.startswith("CRMSCORE_")}
    generated = run_cli(
        ["generate", "--customers", "1200", "--months", "27", "--seed", "5", "--out", str(later),
         "--campaigns", str(listed), "--no-progress"],
        env,
    )  # fmt: skip
    assert generated.exit_code == 0, generated.output
    env["CRMSCORE_DATA_DIR"] = str(later)
    env["CRMSCORE_CONSOLE__CAMPAIGNS_DIR"] = str(listed.parent.parent)
    result = run_cli(["campaign", "results", campaign_id], env)
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(listed)
    accounts = pd.read_parquet(later / "raw" / "accounts")
    opened = accounts[
        (accounts["product"] == "credit_card")
        & (pd.to_datetime(accounts["open_date"]) >= "2026-01-01")
        & (pd.to_datetime(accounts["open_date"]) < "2026-04-01")
    ]["customer_id"]
    took = frame["customer_id"].isin(opened)
    expected = took[frame["group"] == "target"].sum()
    assert f"{(frame['group'] == 'target').sum():>7,} customers  {expected:>6,} opened" in (
        result.output
    )
    assert "lift" in result.output and "95% CI" in result.output


def test_bad_form_input_gets_the_api_message_and_nothing_is_saved(browser, server):
    page = login(browser, server, "k-mkt")
    page.goto(f"{server['url']}/console/campaigns")
    page.fill("input[name=top]", "many")
    page.fill("input[name=name]", "broken")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("button.primary")
    assert posted.value.status == 400
    message = page.inner_text("p.error")
    api = httpx.post(
        f"{server['url']}/targets",
        json={"product": "credit_card", "top": "many"},
        headers={"X-API-Key": "k-mkt"},
    )
    assert api.status_code == 400 and message == api.json()["error"]
    assert message.startswith("top: ")
    assert page.input_value("input[name=name]") == "broken"  # the form as filled, to correct
    shot(page, "campaign-bad-input")
    page.goto(f"{server['url']}/console/campaigns?submitted=1&product=gold_bars&top=5")
    assert "unknown product 'gold_bars'" in page.inner_text("p.error")
    saved = Path(server["env"]["CRMSCORE_DATA_DIR"]) / "campaigns"
    names = [c.name for c in saved.iterdir()] if saved.exists() else []
    assert all(not n.startswith(".") for n in names)  # no half-written campaign
    assert not any("broken" in (c / "campaign.json").read_text() for c in saved.iterdir())


# --- customers -----------------------------------------------------------------------------------


def test_customer_lookup_shows_scores_reasons_waterfalls_and_is_audited(browser, server):
    page = login(browser, server, "k-risk")
    customer = int(server["customers"]["customer_id"].iloc[7])
    page.goto(f"{server['url']}/console/customers")
    page.fill("#customer_id", str(customer))
    page.click("form.search button")
    page.wait_for_url(f"**/console/customers/{customer}")
    text = page.inner_text("main")
    for needle in ("Churn probability", "Probability of default", "Next best product",
                   "Contact plan", "Reasons", "Recent interactions", "Trends"):  # fmt: skip
        assert needle in text, needle
    grade = page.locator("tr", has_text="Rating grade").inner_text()
    assert "master scale" in grade and "—" not in grade  # a grade of the master scale
    assert page.locator("ol.reasons li").count() >= 3
    assert page.locator("svg.chart").count() == 6  # 3 trends + 3 waterfalls
    assert "raises" in text or "lowers" in text
    shot(page, "customer-risk")
    from serving.access import Pseudonymiser

    pseudonym = Pseudonymiser.from_secret("console-audit")(customer)
    seen = [a for a in audit_lines(server) if a["endpoint"] == "console/customers"]
    assert any(a["customers"] == [pseudonym] and a["role"] == "risk" for a in seen)
    shown = {c for a in seen for c in a["customers"]}
    assert str(customer) not in shown and all(len(c) == 16 for c in shown)  # pseudonyms only
    page.goto(f"{server['url']}/console/customers?customer_id=abc")
    assert "customer_id: must be a customer id" in page.inner_text("p.error")
    response = page.goto(f"{server['url']}/console/customers/99999999")
    assert response.status == 404


# --- roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "path", "status"),
    [
        ("k-mkt", "customers/1", 403),
        ("k-mkt", "models", 403),
        ("k-risk", "campaigns", 403),
        ("k-risk", "worklist", 403),
        ("k-svc", "portfolio", 403),
        ("k-mgr", "portfolio", 403),
        ("k-mgr", "campaigns", 403),
        ("k-mkt", "portfolio", 200),
        ("k-risk", "models", 200),
    ],
)
def test_each_role_opens_only_its_pages(browser, server, key, path, status):
    page = login(browser, server, key)
    response = page.goto(f"{server['url']}/console/{path}")
    assert response.status == status
    if status == 403:
        assert "may not open" in page.inner_text("p.error")
        shot(page, f"refused-{KEYS[key]}-{path.split('/')[0]}")


def test_a_manager_sees_only_their_own_worklist_and_customers(browser, server):
    customers, manager = server["customers"], server["manager"]
    page = login(browser, server, "k-mgr")
    assert page.get_by_role("link", name="Portfolio").count() == 0  # nav shows only theirs
    response = page.goto(f"{server['url']}/console/worklist")
    assert response.status == 200 and f"manager {manager}" in page.inner_text("h1")
    shot(page, "worklist-manager")
    listed = [int(a.inner_text()) for a in page.locator("table.list tbody td:first-child a").all()]
    mine = set(customers.loc[customers["manager_id"] == manager, "customer_id"])
    assert listed and set(listed) <= mine
    other = int(customers.loc[customers["manager_id"] != manager, "customer_id"].dropna().iloc[0])
    assert page.goto(f"{server['url']}/console/customers/{listed[0]}").status == 200
    assert page.goto(f"{server['url']}/console/customers/{other}").status == 403
    assert page.goto(f"{server['url']}/console/worklist?manager_id={manager + 1}").status == 403


def test_anonymous_and_unknown_keys_are_sent_to_the_login_page(browser, server):
    browser.clear_cookies()
    page = browser.new_page()
    page.goto(f"{server['url']}/console/portfolio")
    assert "/console/login" in page.url
    page.fill("#api_key", "not-a-key")
    page.click("button[type=submit]")
    assert "unknown API key" in page.inner_text("p.error")
    forged = httpx.get(
        f"{server['url']}/console/portfolio",
        cookies={"crmscore_console": "eyJrIjoiMDAwIiwiZXhwIjo5OTk5OTk5OTk5fQ.00"},
        follow_redirects=False,
    )
    assert forged.status_code == 303 and "/console/login" in forged.headers["location"]
    page.fill("#api_key", "k-mkt")
    page.click("button[type=submit]")
    assert page.url.endswith("/console/portfolio")  # back where they wanted to go
    headers = httpx.get(f"{server['url']}/console/login").headers
    assert "script-src" not in headers["content-security-policy"]  # default-src 'none': no JS


def test_the_books_offer_reasons_are_explain_rows_first_reasons(stack, monkeypatch):
    """The worklist's precomputed reason equals the endpoint's first reason for that offer."""
    from serving.champions import load_champions
    from serving.console.book import offer_reasons
    from serving.explain import explain_rows
    from serving.feature_source import SnapshotFeatures
    from serving.scoring import score_rows

    for name, value in stack["env"].items():
        if name.startswith(("CRMSCORE_", "BENTOML_")):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    champions = load_champions()
    ids = stack["customers"]["customer_id"].head(60).tolist()
    rows, _ = SnapshotFeatures(champions.feature_names()).fetch(ids)
    scores = score_rows(champions, rows, get_settings().serving).to_frame()
    wanted = scores["customer_id"].to_numpy() % 2 == 0
    reasons = offer_reasons(champions, rows, scores, wanted)
    checked = 0
    for i, product in enumerate(scores["next_best_product"]):
        if not wanted[i] or product is None:
            assert reasons[i] is None
            continue
        model = champions.compiled["cross_sell"]
        expected = explain_rows(model, rows.take([i]), product=product)[0]
        assert reasons[i] == expected.reasons[0].sentence
        checked += 1
    assert checked >= 10
    get_settings.cache_clear()
