"""A real browser for the console tests: Debian's chromium, driven by Playwright.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (installed with
apt-get when missing, as root, like ``tests/servers.py`` installs PostgreSQL), headless, with a
fresh profile and every background network feature off, so a test talks to its own server only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import apt_install

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def ensure_chromium() -> Path:
    """The chromium binary, installing Debian's package if it is missing (root only)."""
    if not CHROMIUM.exists():
        apt_install("chromium")
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed and could not be installed")
    return CHROMIUM


@contextmanager
def chromium() -> Iterator[object]:
    """A Playwright ``Browser`` on Debian's chromium with a fresh, throw-away profile."""
    from playwright.sync_api import sync_playwright

    binary = ensure_chromium()
    profile = tempfile.mkdtemp(prefix="crmscore-chromium-")
    # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: belt and braces, nothing may fetch a browser build.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(binary),
                headless=True,
                args=FLAGS,
                viewport={"width": 1400, "height": 900},
                accept_downloads=True,
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def browser_page() -> Iterator[object]:
    """One Playwright page in a fresh :func:`chromium` (closed afterwards)."""
    with chromium() as context:
        yield context.new_page()
