"""A missing client skips a test locally and fails it in CI (LORA_SITE_REQUIRE_CLIENTS=1)."""
from __future__ import annotations

import pytest

from .clientenv import CLIENTS, require_client


@pytest.fixture
def absent(monkeypatch):
    monkeypatch.setitem(CLIENTS, "absent-tool", (lambda: False, "apt-get install absent-tool"))
    monkeypatch.setitem(CLIENTS, "present-tool", (lambda: True, "nothing to do"))


def test_a_missing_client_skips_locally_with_the_install_command(absent, monkeypatch):
    monkeypatch.delenv("LORA_SITE_REQUIRE_CLIENTS", raising=False)
    with pytest.raises(pytest.skip.Exception,
                       match=r"missing client\(s\) absent-tool \(install with: absent-tool: "
                             r"apt-get install absent-tool\)"):
        require_client("present-tool", "absent-tool")


def test_a_missing_client_fails_when_clients_are_required(absent, monkeypatch):
    monkeypatch.setenv("LORA_SITE_REQUIRE_CLIENTS", "1")
    with pytest.raises(pytest.fail.Exception, match="LORA_SITE_REQUIRE_CLIENTS=1"):
        require_client("absent-tool")


def test_present_clients_neither_skip_nor_fail(absent, monkeypatch):
    monkeypatch.setenv("LORA_SITE_REQUIRE_CLIENTS", "1")
    assert require_client("present-tool") is None
