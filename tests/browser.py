"""Debian's headless Chromium for tests that look at pages as a reader would.

Installs the ``chromium`` package when it is missing (root only, as :mod:`tests.servers` does for
its servers) and skips the calling test with the reason when it cannot; Playwright drives that
binary (``executable_path``) and never downloads a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
#: A quiet, offline browser: no sandbox (root in CI), no GPU, no update or sync traffic.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def ensure_chromium() -> str:
    """Path of Debian's chromium, installing the package if needed."""
    if not os.path.exists(CHROMIUM) and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=False,
            capture_output=True,
            env=env,
        )
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed and could not be installed")
    return CHROMIUM


@contextmanager
def browser_page() -> Iterator:
    """A Playwright page in a fresh headless Chromium profile (closed afterwards)."""
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, args=ARGS, headless=True
        )
        try:
            yield context.new_page()
        finally:
            context.close()
