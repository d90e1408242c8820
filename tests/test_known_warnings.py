"""Known harmless third-party warnings are dropped, everything else still shows."""

from __future__ import annotations

import logging

import pytest

from crmscore.known_warnings import KNOWN_LOGS, is_known

SITE = "/venv/lib/python3.11/site-packages"


@pytest.mark.parametrize(
    ("category", "filename", "message", "known"),
    [
        (DeprecationWarning, f"{SITE}/ibis/backends/duckdb/__init__.py",
         "fetch_arrow_table() is deprecated, use to_arrow_table() instead.", True),
        (UserWarning, f"{SITE}/shap/explainers/_tree.py",
         "LightGBM binary classifier with TreeExplainer shap values output has changed", True),
        (DeprecationWarning, f"{SITE}/mlflow/store/tracking/sqlalchemy_store.py",
         "The ``noload`` loader strategy is deprecated and will be removed", True),
        (DeprecationWarning, f"{SITE}/_bentoml_impl/server/app.py",
         "Accessing the 'model_fields' attribute on the instance is deprecated. Instead, you "
         "should access this attribute from the model class.", True),
        # the same notice from our own code still shows: there it is ours to fix
        (DeprecationWarning, "/work/crmscore/serving/console/forms.py",
         "Accessing the 'model_fields' attribute on the instance is deprecated.", False),
        # anything else still shows: another message from the same library, ours, another kind
        (UserWarning, f"{SITE}/shap/explainers/_tree.py", "something new", False),
        (DeprecationWarning, "/work/crmscore/features/x.py",
         "fetch_arrow_table() is deprecated, use to_arrow_table() instead.", False),
        (RuntimeWarning, f"{SITE}/ibis/backends/duckdb/__init__.py",
         "fetch_arrow_table() is deprecated", False),
    ],
)  # fmt: skip
def test_only_the_listed_warnings_are_known(category, filename, message, known):
    assert is_known(category, filename, message) is known


@pytest.mark.parametrize(("name", "start"), [(name, start) for name, start, _ in KNOWN_LOGS])
def test_known_log_records_are_dropped_and_others_kept(caplog, name, start):
    import crmscore  # noqa: F401  (installs the filters)

    with caplog.at_level(logging.WARNING, logger=name):
        logging.getLogger(name).warning(start + " requires exercising caution")
        logging.getLogger(name).warning("a real problem")
    assert [r.getMessage() for r in caplog.records] == ["a real problem"]


def test_a_frozen_heap_exits_without_duckdbs_leak_report():
    """The server freezes its heap (``settle_heap``); DuckDB's bindings would then report every
    object of theirs as leaked at exit, a screenful on stderr, unless it is handed back first."""
    import subprocess
    import sys

    script = (
        "import duckdb\n"
        "from serving.service import settle_heap\n"
        "con = duckdb.connect(); con.sql('SELECT 1').fetchall()\n"
        "settle_heap()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr
