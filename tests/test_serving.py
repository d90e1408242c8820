"""The scoring service end to end: a real ``bentoml serve`` over HTTP, on a small generated bank.

A module fixture generates a bank (1,500 customers x 24 months), builds the Feast repository,
materialises the online store and trains the three models into a temporary MLflow registry; then
it starts the server as a subprocess on a free port with API keys for every role. Tests call every
endpoint over HTTP, compare with the batch CLI, break the registry to exercise /reload, and render
the risk officer's HTML report.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crmscore.settings import PROJECT_ROOT
from tests.stacks import built_stack, stack_env
from tests.test_features import redis_server  # noqa: F401  (a throw-away redis-server fixture)

pytestmark = pytest.mark.slow

KEYS = {"k-mkt": "marketing", "k-risk": "risk", "k-svc": "service", "k-admin": "admin"}
ROLE_KEY = {role: key for key, role in KEYS.items()}
AUDIT_KEY = "test-audit-key"
MAX_BATCH = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BENTOML_SERVE = (sys.executable, "-m", "bentoml", "serve", "serving.service:CrmScore")


def start_server(
    env: dict[str, str], log: Path, command: tuple[str, ...] = BENTOML_SERVE
) -> tuple[subprocess.Popen, str]:
    """``command`` (``bentoml serve``) on a free port; returns the process and its base URL once
    it answers."""
    port = free_port()
    handle = log.open("w")
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/livez", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(process)
    raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")


def stop_server(process: subprocess.Popen) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Bank + features + online store + trained champions, and the settings env that finds them."""
    root = tmp_path_factory.mktemp("serving")
    env = stack_env(
        root,
        CRMSCORE_TRAINING__SHAP_ROWS="200",
        CRMSCORE_SERVING__API_KEYS=json.dumps(KEYS),
        CRMSCORE_SERVING__AUDIT_KEY=AUDIT_KEY,
        CRMSCORE_SERVING__MAX_BATCH=str(MAX_BATCH),
    )
    overrides = {"n_estimators": 150}
    with built_stack(root, env, customers=1500, seed=3, materialise=True, lgbm_overrides=overrides):
        yield {"root": root, "env": {**os.environ, **env}}


@pytest.fixture(scope="module")
def server(stack):
    log = stack["root"] / "server.log"
    process, url = start_server(stack["env"], log)
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    yield {"url": url, "log": log, **stack}
    stop_server(process)


def call(server, endpoint: str, payload: dict, role: str | None = "admin", key: str | None = None):
    headers = {}
    if key is not None:
        headers["X-API-Key"] = key
    elif role is not None:
        headers["X-API-Key"] = ROLE_KEY[role]
    return httpx.post(f"{server['url']}/{endpoint}", json=payload, headers=headers, timeout=120)


# --- the fast path equals the reference path (no server) -------------------------------------

#: Customers compared per model: every tenth of the bank, so the sample covers all tiers.
SAMPLE = slice(None, None, 10)


@pytest.fixture(scope="module")
def loaded(stack):
    """The champions and the feature rows of a sample of customers, read from the online store."""
    from serving.champions import load_champions
    from serving.feature_source import OnlineFeatures

    champions = load_champions()
    source = OnlineFeatures(champions.feature_names())
    rows, unknown = source.fetch(list(range(1, 1501))[SAMPLE])
    assert not unknown and len(rows) == 150
    return {"champions": champions, "source": source, "rows": rows}


def _reference_predictions(champions, frame: pd.DataFrame):
    """The three champions' probabilities through the pandas path (``ScoringModel``)."""
    from serving.catalogue import cross_sell_products
    from serving.scoring import Predictions

    products = cross_sell_products()
    stacked = pd.concat([frame] * len(products), ignore_index=True)
    stacked["product"] = np.repeat(products, len(frame))
    cross_sell = champions.cross_sell.predict_proba(stacked).reshape(len(products), -1).T
    return Predictions(
        churn=champions.churn.predict_proba(frame),
        probability_of_default=champions.credit_risk.predict_proba(frame),
        products=products,
        propensity=cross_sell,
    )


def test_fast_path_gives_the_reference_probabilities_points_tiers_and_offers(loaded):
    from crmscore.settings import ServingSettings
    from serving.scoring import decide, predict

    champions, rows = loaded["champions"], loaded["rows"]
    fast = predict(champions, rows)
    reference = _reference_predictions(champions, rows.to_frame())
    for name in ("churn", "probability_of_default", "propensity"):
        np.testing.assert_allclose(
            getattr(fast, name), getattr(reference, name), rtol=0, atol=1e-9, err_msg=name
        )
    scorecard = champions.compiled["credit_risk"].scorecard
    decided = [decide(p, rows, ServingSettings(), scorecard) for p in (fast, reference)]
    fast_scores, reference_scores = (d.to_frame() for d in decided)
    pd.testing.assert_frame_equal(
        fast_scores, reference_scores, check_exact=False, rtol=0, atol=1e-9
    )
    assert fast_scores["tier"].nunique() >= 3 and fast_scores["next_best_product"].nunique() >= 3
    points = champions.credit_risk.points(reference.probability_of_default)
    np.testing.assert_allclose(fast_scores["score_points"], np.round(points, 1), atol=1e-9)


@pytest.mark.parametrize(
    ("model", "product"),
    [
        ("churn", None),
        ("credit_risk", None),
        ("cross_sell", "insurance"),
        ("cross_sell", "mortgage"),
    ],
)
def test_fast_contributions_equal_shap_tree_explainer(loaded, model, product):
    import shap

    from serving.explain import contributions

    champion, rows = loaded["champions"][model], loaded["rows"]
    compiled = loaded["champions"].compiled[model]
    found = contributions(compiled, rows, product)
    frame = rows.to_frame()
    if product:
        frame["product"] = product
    explainer = shap.TreeExplainer(champion.booster)
    reference = explainer.shap_values(champion.prepare(frame))
    np.testing.assert_allclose(found.matrix, reference, rtol=0, atol=1e-9)
    np.testing.assert_allclose(found.base, explainer.expected_value, rtol=0, atol=1e-9)
    np.testing.assert_allclose(found.base + found.matrix.sum(axis=1), found.raw, atol=1e-9)
    np.testing.assert_allclose(found.probability, champion.predict_proba(frame), rtol=0, atol=1e-9)


def _assert_same_rows(got, expected) -> None:
    (rows, unknown), (want, want_unknown) = got, expected
    assert unknown == want_unknown and rows.customer_ids == want.customer_ids
    np.testing.assert_array_equal(rows.numeric, want.numeric)
    assert {k: v.tolist() for k, v in rows.text.items()} == {
        k: v.tolist() for k, v in want.text.items()
    }


def test_online_reader_reads_what_feast_get_online_features_returns(loaded):
    from features.catalog import feature_names
    from features.online import get_online_features

    source = loaded["source"]
    ids = [3, 987654321, 1, 2]
    rows, unknown = source.fetch(ids)
    assert rows.customer_ids == [3, 1, 2] and unknown == [987654321]
    assert not source.reader.concurrent  # SQLite: the event loop's read is the same read
    _assert_same_rows(asyncio.run(source.fetch_async(ids)), (rows, unknown))
    mine = rows.to_frame().set_index("customer_id")
    for service in ("churn", "cross_sell", "credit_risk"):
        feast = get_online_features([3, 1, 2], service).set_index("customer_id")
        names = feature_names(service)
        pd.testing.assert_frame_equal(
            mine[names], feast[names], check_dtype=False, check_index_type=False
        )


def test_redis_online_store_gives_the_same_rows_and_scores(loaded, redis_server):  # noqa: F811
    """The scale path: the same reader over Redis (one pipelined HMGET batch per view)."""
    from crmscore.settings import ServingSettings, get_settings
    from features.build import apply
    from features.materialize import materialize
    from serving.feature_source import OnlineFeatures
    from serving.scoring import score_rows

    champions, sqlite_rows = loaded["champions"], loaded["rows"]
    ids = [*sqlite_rows.customer_ids, 987654321]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CRMSCORE_FEATURES__ONLINE_STORE", "redis")
        env.setenv("CRMSCORE_FEATURES__REDIS_CONNECTION_STRING", redis_server)
        get_settings.cache_clear()
        try:
            apply()
            materialize()
            redis = OnlineFeatures(champions.feature_names())
            rows, unknown = redis.fetch(ids)
            # The event loop's read: every view's read in flight at once, the same rows.
            assert redis.reader.concurrent
            _assert_same_rows(asyncio.run(redis.fetch_async(ids)), (rows, unknown))
        finally:
            env.undo()
            get_settings.cache_clear()
    _assert_same_rows((rows, unknown), (sqlite_rows, [987654321]))
    settings = ServingSettings()
    pd.testing.assert_frame_equal(
        score_rows(champions, rows, settings).to_frame(),
        score_rows(champions, sqlite_rows, settings).to_frame(),
    )


def test_snapshot_rows_equal_online_rows(loaded):
    from serving.feature_source import SnapshotFeatures

    champions, online = loaded["champions"], loaded["rows"]
    snapshot, unknown = SnapshotFeatures(champions.feature_names()).fetch(online.customer_ids)
    assert not unknown and snapshot.customer_ids == online.customer_ids
    np.testing.assert_array_equal(snapshot.numeric, online.numeric)
    for name, column in online.text.items():
        assert snapshot.text[name].tolist() == column.tolist(), name


# --- health, metrics, OpenAPI ------------------------------------------------------------------


def test_health_readiness_metrics_and_openapi(server):
    url = server["url"]
    assert httpx.get(f"{url}/livez").status_code == 200
    assert httpx.get(f"{url}/readyz").status_code == 200
    call(server, "score", {"customer_ids": [1]})
    metrics = httpx.get(f"{url}/metrics").text
    assert "bentoml_service_request" in metrics
    paths = httpx.get(f"{url}/docs.json").json()["paths"]
    assert {"/score", "/explain", "/score_features", "/targets", "/reload"} <= set(paths)


def test_tracing_is_skipped_on_every_route_unless_requests_are_sampled():
    from opentelemetry.util.http import ExcludeList

    from serving.service import tracing_config

    def excluded(config: dict) -> bool:
        return ExcludeList(config.get("excluded_urls", [])).url_disabled("http://h:3000/score")

    assert excluded(tracing_config(0.0))  # nothing sampled: the middleware returns at once
    assert not excluded(tracing_config(0.1))
    assert tracing_config(0.1)["sample_rate"] == 0.1


#: The generator's pins: a tool environment of its own (it caps typer below the project's pin).
OPENAPI_CLIENT_LOCK = PROJECT_ROOT / "requirements-openapi-client.lock"


def openapi_python_client() -> Path:
    """The ``openapi-python-client`` executable, installed from its lock on first use."""
    tool = Path(sys.prefix) / "tools" / "openapi-python-client"
    executable = tool / "bin" / "openapi-python-client"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(tool)], check=True)
        install = [tool / "bin" / "pip", "install", "--quiet", "-r", OPENAPI_CLIENT_LOCK]
        subprocess.run(install, check=True, capture_output=True)
    return executable


def test_a_client_generated_from_the_live_document_scores_and_gets_typed_errors(
    server, tmp_path, monkeypatch
):
    """What another service's developer does: generate a client from ``/docs.json`` and call it.
    Request and response classes carry readable names; every error status parses as ``Error``."""
    import importlib

    document = tmp_path / "docs.json"
    document.write_bytes(httpx.get(f"{server['url']}/docs.json").content)
    generator = openapi_python_client()
    env = {**os.environ, "PATH": f"{generator.parent}{os.pathsep}{os.environ['PATH']}"}
    generated = subprocess.run(
        [generator, "generate", "--path", document, "--output-path", tmp_path / "crm_client",
         "--meta", "none"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout, generated.stdout  # every schema was understood
    monkeypatch.syspath_prepend(str(tmp_path))
    client = importlib.import_module("crm_client")
    score = importlib.import_module("crm_client.api.scoring.score")
    explain = importlib.import_module("crm_client.api.scoring.explain")
    models = importlib.import_module("crm_client.models")

    def session(key: str | None):
        headers = {} if key is None else {"X-API-Key": key}
        return client.Client(
            base_url=server["url"], headers=headers, raise_on_unexpected_status=True
        )

    marketing = session(ROLE_KEY["marketing"])
    answer = score.sync_detailed(client=marketing, body=models.ScoreRequest(customer_ids=[1, 2]))
    assert answer.status_code == 200 and isinstance(answer.parsed, models.ScoreResponse)
    assert [r.customer_id for r in answer.parsed.results] == [1, 2]
    assert isinstance(answer.parsed.results[0].credit_risk, models.CreditScore)
    reasons = explain.sync(
        client=session(ROLE_KEY["risk"]),
        body=models.ExplainRequest(customer_id=1, model=models.ExplainRequestModel.CREDIT_RISK),
    )
    assert isinstance(reasons, models.ExplainResponse) and reasons.reasons
    assert isinstance(reasons.reasons[0], models.ReasonCode) and reasons.reasons[0].code
    too_many = models.ScoreRequest(customer_ids=list(range(1, MAX_BATCH + 2)))
    for caller, body, status in [
        (session(None), models.ScoreRequest(customer_ids=[1]), 401),
        (session(ROLE_KEY["service"]), None, 403),
        (marketing, too_many, 413),
    ]:
        if status == 403:  # service may not explain
            failed = explain.sync_detailed(
                client=caller,
                body=models.ExplainRequest(customer_id=1, model=models.ExplainRequestModel.CHURN),
            )
        else:
            failed = score.sync_detailed(client=caller, body=body)
        assert failed.status_code == status
        assert isinstance(failed.parsed, models.Error) and failed.parsed.error, status
    unknown = explain.sync_detailed(
        client=session(ROLE_KEY["risk"]),
        body=models.ExplainRequest(customer_id=987654321, model=models.ExplainRequestModel.CHURN),
    )
    assert unknown.status_code == 404 and "987654321" in unknown.parsed.error
    bad = score.sync_detailed(client=marketing, body=models.ScoreRequest(customer_ids=[0]))
    assert bad.status_code == 400 and bad.parsed.field.startswith("customer_ids")


# --- /score ------------------------------------------------------------------------------------


def test_score_reports_every_model_and_unknown_ids(server):
    response = call(server, "score", {"customer_ids": [1, 2, 3, 987654321]}, role="marketing")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["customer_id"] for r in body["results"]] == [1, 2, 3]
    assert body["errors"] == [
        {"customer_id": 987654321, "error": "unknown customer: not in the online store"}
    ]
    assert set(body["models"]) == {"churn", "cross_sell", "credit_risk"}
    # Nobody known: an answer all the same, with no scores (the rules do not run on zero rows).
    nobody = call(server, "score", {"customer_ids": [987654321]}, role="marketing").json()
    assert nobody["results"] == [] and [e["customer_id"] for e in nobody["errors"]] == [987654321]
    assert set(nobody["models"]) == {"churn", "cross_sell", "credit_risk"}
    for result in body["results"]:
        assert 0 < result["churn"]["probability"] < 1
        assert result["churn"]["model"] == "crmscore-churn" and result["churn"]["version"] == "1"
        assert 0 < result["credit_risk"]["probability_of_default"] < 1
        assert 300 < result["credit_risk"]["points"] < 900
        products = {p["product"]: p for p in result["cross_sell"]["products"]}
        assert len(products) == 6
        assert all((p["propensity"] is None) == p["holds"] for p in products.values())
        assert result["tier"] in "ABCD" and result["tier_reason"]
        best = result["next_best_product"]
        if best is not None:
            assert not products[best["product"]]["holds"]
            assert best["propensity"] == products[best["product"]]["propensity"]


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        ({"customer_ids": "1,2"}, 400, "customer_ids"),
        ({"customer_ids": []}, 400, "customer_ids"),
        ({"ids": [1]}, 400, "customer_ids"),
        # pydantic would read true as customer 1 and "2" as customer 2
        ({"customer_ids": [True]}, 400, "customer_ids[0]: Input should be a valid integer"),
        ({"customer_ids": [1, "2"]}, 400, "customer_ids[1]: Input should be a valid integer"),
        ({"customer_ids": [1], "segment": "mass"}, 400, "segment: not a field"),
        # a day months past the data: every window empty, every customer "leaving"
        ({"customer_ids": [1], "as_of": "2099-01-01"}, 400, "as_of: 2099-01-01 is after the data"),
        (
            {"customer_ids": list(range(1, MAX_BATCH + 2))},
            413,
            f"maximum batch size of {MAX_BATCH}",
        ),
    ],
)
def test_score_refuses_bad_payloads_naming_the_field(server, payload, status, needle):
    response = call(server, "score", payload)
    assert response.status_code == status
    assert needle in response.text
    assert "Traceback" not in response.text


# --- access control and audit ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "endpoint", "allowed"),
    [
        ("marketing", "score", True),
        ("marketing", "targets", True),
        ("marketing", "explain", False),
        ("marketing", "score_features", False),
        ("risk", "score", True),
        ("risk", "explain", True),
        ("risk", "targets", False),
        ("service", "score", True),
        ("service", "score_features", True),
        ("service", "explain", False),
        ("service", "targets", False),
        ("marketing", "reload", False),
    ],
)
def test_roles_see_only_their_endpoints(server, role, endpoint, allowed):
    payloads = {
        "score": {"customer_ids": [1]},
        "targets": {"product": "insurance", "top": 3},
        "explain": {"customer_id": 1, "model": "churn"},
        "score_features": {"rows": [{"txn_count_1m": 3}]},
        "reload": {},
    }
    response = call(server, endpoint, payloads[endpoint], role=role)
    assert response.status_code == (200 if allowed else 403), response.text
    if not allowed:
        assert role in response.json()["error"]


def test_missing_or_unknown_key_is_401_before_the_payload_is_read(server):
    assert call(server, "score", {"customer_ids": [1]}, role=None).status_code == 401
    assert call(server, "score", {"customer_ids": [1]}, key="k-mkt-guess").status_code == 401
    assert call(server, "score", {"customer_ids": "garbage"}, role=None).status_code == 401
    bearer = httpx.post(
        f"{server['url']}/score",
        json={"customer_ids": [1]},
        headers={"Authorization": "Bearer k-risk"},
    )
    assert bearer.status_code == 200


def test_audit_log_pseudonymises_customer_ids(server):
    customer = 1234
    assert call(server, "score", {"customer_ids": [customer]}, role="risk").status_code == 200
    pseudonym = hmac.new(AUDIT_KEY.encode(), str(customer).encode(), hashlib.sha256).hexdigest()
    time.sleep(0.5)
    lines = [line for line in server["log"].read_text().splitlines() if "AUDIT" in line]
    records = [json.loads(line.split("AUDIT ", 1)[1]) for line in lines]
    mine = [r for r in records if r["role"] == "risk" and pseudonym[:16] in r["customers"]]
    assert mine and mine[-1]["endpoint"] == "score" and mine[-1]["status"] == 200
    assert all(
        customer not in r["customers"] and str(customer) not in r["customers"] for r in records
    )
    assert any(r["status"] == 401 for r in records)


def _audit_lines(server) -> list[dict]:
    time.sleep(0.5)  # the server's stderr reaches the file
    lines = [line for line in server["log"].read_text().splitlines() if "AUDIT" in line]
    return [json.loads(line.split("AUDIT ", 1)[1]) for line in lines]


@pytest.mark.parametrize(
    ("endpoint", "payload", "status"),
    [
        ("score", {"customer_ids": [5]}, 200),
        ("explain", {"customer_id": 987654321, "model": "nope"}, 400),  # refused by BentoML
        ("score", {"customer_ids": [987654321], "as_of": "2099-01-01"}, 400),  # by the endpoint
    ],
)
def test_each_request_leaves_one_audit_line_and_a_refusal_no_traceback(
    server, endpoint, payload, status
):
    """A payload BentoML refuses before the endpoint runs left no audit line, and a 24-line
    traceback in the server log quoting the payload, customer ids in the clear."""
    before = len(_audit_lines(server))
    response = call(server, endpoint, payload, role="risk")
    assert response.status_code == status, response.text
    records = _audit_lines(server)
    assert len(records) == before + 1
    assert records[-1]["endpoint"] == endpoint and records[-1]["status"] == status
    log = server["log"].read_text()
    assert "987654321" not in log
    assert "Exception on" not in log


def test_a_form_body_is_415_saying_to_send_json(server):
    """``curl -d`` without a JSON content type sends a form: BentoML read the JSON text as one
    form key and answered that customer_ids was missing."""
    response = httpx.post(
        f"{server['url']}/score",
        content=b'{"customer_ids": [1]}',
        headers={
            "X-API-Key": ROLE_KEY["risk"],
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 415
    assert response.json()["field"] == "body"
    assert "Content-Type: application/json" in response.json()["error"]


# --- /explain ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "product"), [("churn", None), ("credit_risk", None), ("cross_sell", "insurance")]
)
def test_explain_contributions_add_up_to_the_raw_score(server, model, product):
    payload = {"customer_id": 7, "model": model, "top_k": 4, "direction": "both"}
    if product:
        payload["product"] = product
    response = call(server, "explain", payload, role="risk")
    assert response.status_code == 200, response.text
    body = response.json()
    total = body["base_value"] + sum(body["contributions"].values())
    assert total == pytest.approx(body["raw_score"], abs=1e-6)
    assert body["version"] == "1" and body["registered_model"] == f"crmscore-{model}"
    assert len(body["reasons"]) == 4
    sizes = [abs(r["contribution"]) for r in body["reasons"]]
    assert sizes == sorted(sizes, reverse=True)
    for reason in body["reasons"]:
        verb = "raises" if reason["contribution"] > 0 else "lowers"
        assert verb in reason["sentence"] and reason["sentence"].endswith(".")
        assert reason["feature"] in reason["features"]
        family = sum(body["contributions"][f] for f in reason["features"])
        assert reason["contribution"] == pytest.approx(family, abs=1e-12)
        assert re.fullmatch(r"[A-Z]\d\d", reason["code"]) and reason["text"]
        assert "offered" not in reason["sentence"]  # derived inputs read as their store column
    default = call(server, "explain", {k: v for k, v in payload.items() if k not in
                   ("top_k", "direction")}, role="risk").json()  # fmt: skip
    assert 1 <= len(default["reasons"]) <= 4
    assert all(r["contribution"] > 0 for r in default["reasons"])
    if model == "credit_risk":  # never a reason for credit: age, region, occupation
        given = {f for r in default["reasons"] for f in r["features"]}
        assert not given & {"age_years", "region", "occupation"}
        withheld = sum(body["contributions"][f] for f in ("age_years", "region", "occupation"))
        assert body["withheld"] == pytest.approx(withheld, abs=1e-12)
    score = call(server, "score", {"customer_ids": [7]}).json()["results"][0]
    if model == "churn":  # uncalibrated: the probability is the sigmoid of the raw score
        assert body["probability"] == pytest.approx(1 / (1 + math.exp(-body["raw_score"])))
        assert body["probability"] == pytest.approx(score["churn"]["probability"])
    if model == "credit_risk":
        assert body["probability"] == pytest.approx(score["credit_risk"]["probability_of_default"])
        assert body["points"] == pytest.approx(score["credit_risk"]["points"], abs=0.05)


def test_explain_errors(server):
    unknown = call(server, "explain", {"customer_id": 987654321, "model": "churn"})
    assert unknown.status_code == 404 and "987654321" in unknown.json()["error"]
    wrong_model = call(server, "explain", {"customer_id": 1, "model": "fraud"})
    assert wrong_model.status_code == 400 and "model" in wrong_model.text
    stray_product = call(
        server, "explain", {"customer_id": 1, "model": "churn", "product": "mortgage"}
    )
    assert stray_product.status_code == 400 and stray_product.json()["field"] == "product"


# --- /score_features ---------------------------------------------------------------------------


def test_score_features_matches_score_for_the_same_values(server):
    from features.catalog import as_model_dtypes  # noqa: F401  (same dtype contract as the store)
    from serving.champions import load_champions
    from serving.feature_source import OnlineFeatures

    champions = load_champions()
    rows, _ = OnlineFeatures(champions.feature_names()).fetch([11])
    row = {
        k: (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in rows.to_frame().iloc[0].to_dict().items()
    }
    row["customer_id"] = int(row["customer_id"])
    sent = call(server, "score_features", {"rows": [row]}, role="service")
    assert sent.status_code == 200, sent.text
    looked_up = call(server, "score", {"customer_ids": [11]}).json()["results"][0]
    assert sent.json()["results"][0] == looked_up


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"txn_count_1m": "many"}, "rows[0].txn_count_1m"),
        ({"segment": "gold"}, "rows[0].segment"),
        ({"shoe_size": 42}, "rows[0].shoe_size"),
        ({"segment": 3}, "rows[0].segment"),
    ],
)
def test_score_features_refuses_bad_values_naming_the_field(server, row, field):
    response = call(server, "score_features", {"rows": [row]}, role="service")
    assert response.status_code == 400
    assert response.json()["field"] == field and field in response.json()["error"]


# --- /targets ----------------------------------------------------------------------------------


def test_targets_apply_every_exclusion(server, stack):
    payload = {
        "product": "wealth_management",
        "top": 40,
        "exclude_pd_above": 0.05,
        "contacted_within_days": 90,
        "segments": ["mass", "emerging_affluent"],
    }
    response = call(server, "targets", payload, role="marketing")
    assert response.status_code == 200, response.text
    body = response.json()
    targets = body["targets"]
    assert 0 < len(targets) <= 40 and [t["rank"] for t in targets] == list(
        range(1, len(targets) + 1)
    )
    assert [t["propensity"] for t in targets] == sorted(
        (t["propensity"] for t in targets), reverse=True
    )
    assert all(t["probability_of_default"] <= 0.05 for t in targets)
    assert all(t["segment"] in ("mass", "emerging_affluent") for t in targets)
    assert all(
        t["expected_value"] == pytest.approx(t["propensity"] * 300, abs=0.01) for t in targets
    )
    assert all(len(t["reasons"]) == 3 for t in targets)
    assert body["excluded"]["already holds it"] > 0 and body["excluded"]["no marketing consent"] > 0
    assert body["eligible"] >= len(targets)
    # The exclusions hold against the raw data too.
    raw = Path(stack["env"]["CRMSCORE_DATA_DIR"]) / "raw"
    customers = pd.read_parquet(raw / "customers").set_index("customer_id")
    ids = [t["customer_id"] for t in targets]
    assert customers.loc[ids, "marketing_consent"].all()
    accounts = pd.read_parquet(raw / "accounts")
    holders = set(accounts.loc[accounts["product"] == "wealth_management", "customer_id"])
    open_holders = set(
        accounts.loc[
            (accounts["product"] == "wealth_management") & accounts["close_date"].isna(),
            "customer_id",
        ]
    )
    assert not set(ids) & open_holders
    assert holders  # the bank does sell the product


def test_targets_follow_a_materialisation(server):
    """/targets ranks a book of scores read from the online store; after the store is loaded
    with another snapshot, the next list is ranked on the new values (what /score now says)."""
    from datetime import timedelta

    from features.materialize import latest_snapshot, materialize

    def listed() -> dict[int, float]:
        body = call(server, "targets", {"product": "insurance", "top": 20}, role="marketing")
        assert body.status_code == 200, body.text
        return {t["customer_id"]: t["propensity"] for t in body.json()["targets"]}

    def scored(ids) -> dict[int, float]:
        results = call(server, "score", {"customer_ids": list(ids)}).json()["results"]
        return {
            r["customer_id"]: next(
                p["propensity"] for p in r["cross_sell"]["products"] if p["product"] == "insurance"
            )
            for r in results
        }

    before = listed()
    assert before == pytest.approx(scored(before))
    latest = latest_snapshot()
    try:
        materialize(end=latest - timedelta(days=20))  # the month before
        after = listed()
        assert after != before
        assert after == pytest.approx(scored(after))
    finally:
        materialize(end=latest)
    assert listed() == pytest.approx(before)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"product": "yacht", "top": 5}, "product"),
        ({"product": "insurance", "top": 0}, "top"),
        ({"product": "insurance", "top": 5, "segments": ["vip"]}, "segments"),
        ({"product": "insurance", "top": 5, "exclude_pd_above": 2}, "exclude_pd_above"),
        # misspelt filters: ignored, they would have answered 200 with an unfiltered list
        ({"product": "insurance", "top": 5, "region": ["north"]}, "region"),
        ({"product": "insurance", "top": 5, "exclude_pd_abvoe": 0.01}, "exclude_pd_abvoe"),
    ],
)
def test_targets_refuse_bad_queries(server, payload, field):
    response = call(server, "targets", payload, role="marketing")
    assert response.status_code == 400
    assert field in response.text


# --- batch CLI = endpoint ----------------------------------------------------------------------


def test_batch_scores_equal_endpoint_scores(server, tmp_path):
    from crmscore.cli import app

    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, ["score", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    batch = pd.read_parquet(out).set_index("customer_id")
    assert len(batch) == 1500 and batch.index.is_unique
    ids = [int(i) for i in batch.sample(MAX_BATCH, random_state=1).index]
    served = call(server, "score", {"customer_ids": ids}).json()["results"]
    for result in served:
        row = batch.loc[result["customer_id"]]
        assert result["churn"]["probability"] == pytest.approx(row["churn_probability"], rel=1e-12)
        assert result["credit_risk"]["probability_of_default"] == pytest.approx(
            row["probability_of_default"], rel=1e-12
        )
        for p in result["cross_sell"]["products"]:
            expected = row[f"propensity_{p['product']}"]
            if p["propensity"] is None:
                assert np.isnan(expected)
            else:
                assert p["propensity"] == pytest.approx(expected, rel=1e-12)
        assert result["tier"] == row["tier"]
        best = result["next_best_product"]
        assert (best["product"] if best else None) == row["next_best_product"]
    assert not list(tmp_path.glob(".*partial"))


def test_batch_targets_and_cli_errors(server, tmp_path):
    from crmscore.cli import app

    runner = CliRunner()
    out = tmp_path / "mortgage.csv"
    result = runner.invoke(
        app, ["targets", "--product", "mortgage", "--top", "25", "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(out)
    assert len(listed) == 25 and listed["propensity"].is_monotonic_decreasing
    served = call(server, "targets", {"product": "mortgage", "top": 25}, role="marketing").json()
    assert listed["customer_id"].tolist() == [t["customer_id"] for t in served["targets"]]
    bad = runner.invoke(app, ["targets", "--product", "car", "--top", "5", "--out", str(out)])
    assert bad.exit_code == 1 and "unknown product 'car'" in bad.output
    bad = runner.invoke(app, ["score", "--out", str(tmp_path / "scores.json")])
    assert bad.exit_code == 1 and ".parquet or .csv" in bad.output


def test_html_report_renders(server, tmp_path):
    from crmscore.cli import app

    page = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["explain", "7", "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "Customer 7" in text
    assert text.count('<table class="reasons">') == 3
    assert text.count('<img alt="SHAP waterfall') == 3 and "data:image/png;base64," in text
    assert "http://" not in text and "https://" not in text  # self-contained
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:
        shot = tmp_path / "report.png"
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
             "--window-size=1200,2400", page.as_uri()],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        assert shot.stat().st_size > 10_000


# --- reload and unavailability -----------------------------------------------------------------


def test_reload_keeps_the_models_in_use_when_loading_fails(server):
    """A registry that cannot give a champion (here: alias removed) must not empty the server."""
    from training.registry import configure_mlflow

    client = configure_mlflow()
    client.delete_registered_model_alias("crmscore-cross_sell", "champion")
    try:
        failed = call(server, "reload", {})
        assert failed.status_code == 503
        assert "kept the current models" in failed.json()["error"]
        assert "cross_sell" in failed.json()["error"] and "Traceback" not in failed.text
        assert call(server, "score", {"customer_ids": [1]}).status_code == 200
        assert httpx.get(f"{server['url']}/readyz").status_code == 200
    finally:
        client.set_registered_model_alias("crmscore-cross_sell", "champion", "1")
    reloaded = call(server, "reload", {})
    assert reloaded.status_code == 200 and reloaded.json()["models"]["churn"]["version"] == "1"


def test_server_without_models_is_not_ready_and_says_why(stack, tmp_path):
    env = {
        **stack["env"],
        "CRMSCORE_TRAINING__TRACKING_URI": f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}",
    }
    process, url = start_server(env, tmp_path / "server.log")
    try:
        assert httpx.get(f"{url}/readyz").status_code == 503
        response = httpx.post(
            f"{url}/score", json={"customer_ids": [1]}, headers={"X-API-Key": "k-mkt"}
        )
        assert response.status_code == 503
        assert "champion" in response.json()["error"] and "Traceback" not in response.text
    finally:
        stop_server(process)


def test_bentoml_build_packages_the_service(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", str(PROJECT_ROOT), "--output", "tag"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "crmscore:" in result.stdout
    (bento,) = (tmp_path / "bentoml" / "bentos" / "crmscore").glob("*/bento.yaml")
    assert "serving.service:CrmScore" in bento.read_text()
    assert (bento.parent / "src" / "serving" / "service.py").is_file()
