"""The command line as a whole: help that shows what it says, and one clear line for a bad
environment or a port that is taken (no traceback)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from crmscore.cli import app
from crmscore.settings import get_settings

runner = CliRunner()


def _commands(command: click.Command, path: str = "crmscore"):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


def test_every_help_text_reads_as_written():
    """Typer renders help with Rich markup: "[default: settings]" in a help text was taken for a
    markup tag and dropped ("Number of customers ."). Every command's and option's text must
    come out as written."""
    eaten = []
    for path, command in _commands(typer.main.get_command(app)):
        texts = [("", command.help or "")] + [
            (p.name, getattr(p, "help", None) or "") for p in command.params
        ]
        eaten += [f"{path} {name}: {t!r}" for name, t in texts if Text.from_markup(t).plain != t]
    assert not eaten


def test_a_setting_that_is_not_json_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("CRMSCORE_SERVING__API_KEYS", "not json")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["schema"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "settings from the environment" in result.output
    assert "JSON" in result.output
    assert "Traceback" not in result.output


def test_serve_on_a_port_in_use_is_one_clear_error():
    """Run as its own process: ``serve`` replaces its process with BentoML's server."""
    crmscore = Path(sys.executable).with_name("crmscore")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [crmscore, "serve", "--port", str(port)], capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["0", "99999"])
def test_serve_refuses_a_port_out_of_range(port):
    result = runner.invoke(app, ["serve", "--port", port])
    assert result.exit_code != 0
    assert "--port" in result.output


def test_train_all_shows_what_it_trained_when_one_model_cannot_be(monkeypatch):
    """A short export with no defaults cannot label credit risk: the other models' results
    are still shown, then the error, and the exit code says it failed."""
    from types import SimpleNamespace

    import training.pipeline

    def train_model(name, progress):
        if name == "credit_risk":
            raise ValueError("no labelled snapshots or cases: nothing to train on")
        row = {"model": name, "version": "1", "auc": 0.8, "auc_ci_low": 0.7, "auc_ci_high": 0.9}
        row |= dict.fromkeys(("baseline_auc", "oracle_auc", "gap", "ks", "brier"), 0.1)
        row |= {"top_decile_lift": 2.0, "champion": True}
        return SimpleNamespace(
            model=name,
            version="1",
            summary=lambda: row,
            extra={"label_source": "the derived rule"},
            reason="no champion yet",
            split=SimpleNamespace(note=""),
        )

    monkeypatch.setattr(training.pipeline, "train_model", train_model)
    result = runner.invoke(app, ["train", "all", "--no-progress"])
    assert result.exit_code == 1
    assert "churn v1" in result.output and "cross_sell v1" in result.output
    assert "error: training credit_risk: no labelled snapshots" in result.output
