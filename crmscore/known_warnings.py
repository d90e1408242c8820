"""Third-party warnings known to be harmless here, silenced in this one place.

A newcomer running ``make demo`` should see stages, progress bars and results, not pages of
other libraries' notices. Each entry below says why it is harmless; anything not listed is still
shown. Warnings that were ours to fix are fixed where they arose, not listed here.

The filter sits in ``warnings.showwarning`` rather than in ``warnings.filters``: Feast calls
``warnings.simplefilter("once", DeprecationWarning)`` when it is imported, which would put a
broader rule in front of any filter installed earlier.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class Known:
    """A warning matched by category, emitting module path and message (regular expressions)."""

    category: type[Warning]
    path: str
    message: str
    why: str

    def matches(self, category: type[Warning], filename: str, message: str) -> bool:
        return (
            issubclass(category, self.category)
            and re.search(self.path, filename.replace("\\", "/")) is not None
            and re.search(self.message, message) is not None
        )


KNOWN: tuple[Known, ...] = (
    Known(
        DeprecationWarning,
        r"/ibis/backends/duckdb/",
        r"fetch_arrow_table\(\) is deprecated",
        "Feast's DuckDB offline store goes through ibis, which calls a DuckDB 2.0 method renamed "
        "since; same result, and not our code to change.",
    ),
    Known(
        UserWarning,
        r"/shap/explainers/_tree\.py",
        r"LightGBM binary classifier with TreeExplainer shap values output has changed",
        "SHAP announces its output format for LightGBM; the summary plot reads the format of the "
        "installed version.",
    ),
    Known(
        DeprecationWarning,  # pydantic's PydanticDeprecatedSince211
        r"/_bentoml_impl/server/",
        r"Accessing the 'model_fields' attribute on the instance is deprecated",
        "BentoML's server reads a request model's fields from the instance (pydantic 2.11 wants "
        "the class) on the first request of each worker; the same fields, and pydantic stays "
        "below 3 in the lock.",
    ),
    Known(
        Warning,  # SQLAlchemy's SADeprecationWarning
        r"/mlflow/store/",
        r"The ``noload`` loader strategy is deprecated",
        "MLflow's SQL tracking store uses a SQLAlchemy option deprecated for a later release.",
    ),
)
#: Log records (logger name, message start) known to be harmless.
KNOWN_LOGS: tuple[tuple[str, str, str], ...] = (
    (
        "mlflow.pyfunc",
        "Passing a Python object as `python_model`",
        "Our own pyfunc wrapper is pickled by our own pipeline and loaded only from our own "
        "registry; MLflow's models-from-code alternative adds nothing for that.",
    ),
    (
        "mlflow.sklearn",
        "Saving scikit-learn models in the pickle or cloudpickle format",
        "The same notice for the scikit-learn challengers our pipeline logs and reloads itself.",
    ),
    (
        "mlflow.pyfunc",
        "Validating input example against model signature",
        "MLflow announces a check it runs on every logged model; a mismatch raises an error, "
        "which still stops the run.",
    ),
    (
        "mlflow.store.db.utils",
        "Creating initial MLflow database tables",
        "The embedded tracking store's first use; `crmscore train` reports the run itself.",
    ),
    (
        "mlflow.store.db.utils",
        "Updating database tables",
        "Its schema migration at the same first use, with nothing for the user to do.",
    ),
)


def is_known(category: type[Warning], filename: str, message: str) -> bool:
    """True when the warning is one of :data:`KNOWN`."""
    return any(k.matches(category, filename, message) for k in KNOWN)


class _KnownLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(
            record.name == name and str(record.msg).startswith(start)
            for name, start, _ in KNOWN_LOGS
        )


def silence_known_warnings() -> None:
    """Drop the :data:`KNOWN` warnings and :data:`KNOWN_LOGS` records; idempotent."""
    show = warnings.showwarning
    if getattr(show, "crmscore_known", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if is_known(category, filename, str(message)):
            return
        show(message, category, filename, lineno, file, line)

    showwarning.crmscore_known = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning
    for name in {name for name, _, _ in KNOWN_LOGS}:
        logging.getLogger(name).addFilter(_KnownLogs())
