"""A bank's own export, end to end, as a data engineer onboards it (README: "Bring your own bank").

The export is the fictional core system of ``examples/corebank`` (``;``, cp1250, decimal commas,
YYMMDD and DD.MM.YYYY dates, its own product codes and district names, unsigned amounts with a
debit/credit flag, extra columns, overdrafts beyond the limit, no interaction log, no monthly
arrears file, no consent column, and a register of defaulted loans), written from a generated
bank. Through the command line and a real ``bentoml serve``:

ingest with the mapping -> features build on what exists -> train every model (credit risk from
the bank's own default register) -> ``/score`` now and as of a decision date -> ``crmscore score
--as-of`` -> target lists that need consent refused unless consent is assumed.
"""

from __future__ import annotations

import re
import shutil

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crmscore.cli import app
from crmscore.settings import PROJECT_ROOT
from tests.corebank import write_export
from tests.stacks import settings_env, stack_env
from tests.test_serving import start_server, stop_server

pytestmark = pytest.mark.slow

EXAMPLE = PROJECT_ROOT / "examples" / "corebank"
KEY = "k-admin"


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def onboarded(tmp_path_factory):
    """The export ingested, its features built and every model trained, as the README says."""
    from crmscore.synthetic import BankConfig, generate_bank

    root = tmp_path_factory.mktemp("own-bank")
    generate_bank(BankConfig(customers=1200, months=24, seed=5), root / "generated", progress=False)
    write_export(root / "generated", root / "export")
    for name in ("mapping.yaml", "bank.yaml"):
        shutil.copy(EXAMPLE / name, root / name)
    env = stack_env(
        root,
        CRMSCORE_SERVING__API_KEYS=f'{{"{KEY}": "admin"}}',
        # A model of the bank's own choosing: its register read as a 6-month loss horizon.
        CRMSCORE_TRAINING__CUSTOM_MODELS='{"loss_6m": {"outcome": "default", "description": '
        '"Defaults within 6 months (the register).", "features": "credit_risk", '
        '"population": "credit", "horizon_months": 6}}',
        CRMSCORE_TRAINING__SHAP_ROWS="200",
    )
    with settings_env(env):
        logs = {
            "ingest": _run(
                "ingest",
                str(root / "export"),
                "--mapping",
                str(root / "mapping.yaml"),
                "--as-of",
                "2026-12-01",
            ),  # fmt: skip
            "build": _run("features", "build", "--no-progress"),
            "materialize": _run("features", "materialize"),
            "train": _run("train", "all", "--no-progress"),
        }
        yield root, env, logs


def test_ingest_says_what_the_export_lacks_and_keeps_the_overdrafts(onboarded):
    _, _, logs = onboarded
    assert (
        "absent tables (their features will be missing): interactions, credit_status"
        in (logs["ingest"])
    )
    assert "overdraft_beyond_limit" in logs["ingest"]
    assert "source columns not mapped, ignored: NAME, ZIP" in logs["ingest"]


def test_the_build_uses_what_exists(onboarded):
    _, _, logs = onboarded
    assert "tables used: customers, accounts, transactions" in logs["build"]
    assert "tables absent: interactions, credit_status" in logs["build"]
    assert "left out of profile: segment, segment_rank, income_band" in logs["build"]


def test_every_model_trains_and_credit_risk_learns_from_the_banks_register(onboarded):
    _, _, logs = onboarded
    assert "credit_risk: labels from the bank's recorded 'default' events" in logs["train"]
    assert "loss_6m: labels from the bank's recorded 'default' events" in logs["train"]
    assert "churn: labels from the derived rule" in logs["train"]
    for model in ("churn", "cross_sell", "credit_risk", "loss_6m"):
        assert f"{model} v1" in logs["train"]
        # without progress bars (a batch job), one timestamped line per step
        assert re.search(rf"^\d\d:\d\d:\d\d {model}: fit$", logs["train"], re.MULTILINE)
    # The command says each version; MLflow's own registration lines would only repeat it.
    assert "Successfully registered model" not in logs["train"]
    assert "Created version" not in logs["train"]


@pytest.fixture(scope="module")
def server(onboarded):
    root, env, _ = onboarded
    process, url = start_server(env, root / "server.log")
    yield url
    stop_server(process)


def _post(url: str, endpoint: str, payload: dict) -> httpx.Response:
    return httpx.post(f"{url}/{endpoint}", json=payload, headers={"X-API-Key": KEY}, timeout=120)


def _decided(onboarded) -> tuple[list[int], str]:
    """Customers of the default register's loans and a decision day mid-month."""
    root, _, _ = onboarded
    register = pd.read_csv(root / "export" / "DEFAULTS.CSV", sep=";", encoding="cp1250")
    return sorted(register["CLIENT_NO"].astype(int).unique().tolist())[:5], "2025-06-17"


def test_score_now_and_as_of_a_decision_date(onboarded, server):
    customers, day = _decided(onboarded)
    now = _post(server, "score", {"customer_ids": customers})
    assert now.status_code == 200, now.text
    then = _post(server, "score", {"customer_ids": customers, "as_of": day})
    assert then.status_code == 200, then.text
    pd_now = {
        r["customer_id"]: r["credit_risk"]["probability_of_default"] for r in now.json()["results"]
    }
    pd_then = {r["customer_id"]: r["credit_risk"]["probability_of_default"]
               for r in then.json()["results"]}  # fmt: skip
    assert set(pd_then) == set(customers)
    assert pd_now != pd_then  # a year and a half earlier, the same customers looked different
    own = now.json()["results"][0]["own"]  # the bank's own model, served beside the three
    assert set(own) == {"loss_6m"} and 0 < own["loss_6m"]["probability"] < 1
    assert own["loss_6m"]["model"] == "crmscore-loss_6m"
    before_anyone = _post(server, "score", {"customer_ids": customers[:1], "as_of": "2000-01-03"})
    assert before_anyone.status_code == 200
    assert before_anyone.json()["errors"] == [
        {"customer_id": customers[0], "error": "unknown customer: no history before 2000-01-03"}
    ]


def test_batch_scores_as_of_a_day_equal_the_endpoints(onboarded, server, tmp_path):
    root, env, _ = onboarded
    customers, day = _decided(onboarded)
    pd.DataFrame({"customer_id": customers}).to_csv(tmp_path / "ids.csv", index=False)
    with settings_env(env):
        _run("score", "--as-of", day, "--customers", str(tmp_path / "ids.csv"),
             "--out", str(tmp_path / "scores.parquet"), "--no-progress")  # fmt: skip
    batch = pd.read_parquet(tmp_path / "scores.parquet").set_index("customer_id")
    endpoint = _post(server, "score", {"customer_ids": customers, "as_of": day}).json()["results"]
    for result in endpoint:
        np.testing.assert_allclose(
            batch.loc[result["customer_id"], "probability_of_default"],
            result["credit_risk"]["probability_of_default"],
            rtol=1e-9,
        )


def test_a_list_needing_consent_is_refused_without_it_unless_assumed(server):
    refused = _post(server, "targets", {"product": "card", "top": 5})
    assert refused.status_code == 400
    assert refused.json()["field"] == "require_consent"
    assert "assume_consent" in refused.json()["error"]
    assumed = _post(server, "targets", {"product": "card", "top": 5, "assume_consent": True})
    assert assumed.status_code == 200, assumed.text
    assert len(assumed.json()["targets"]) == 5
