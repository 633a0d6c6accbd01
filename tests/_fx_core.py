"""Core fixtures: temporary store and home folder."""

from __future__ import annotations

import pytest


@pytest.fixture
def iro_home(tmp_path, monkeypatch):
    """A fresh IRO_HOME (default store and run folders) per test."""
    home = tmp_path / "iro-home"
    monkeypatch.setenv("IRO_HOME", str(home))
    monkeypatch.delenv("IRO_DB", raising=False)
    return home


@pytest.fixture
def store(tmp_path):
    """A real SQLite store in a temporary file."""
    from iro_blackbox.store import open_store

    st = open_store(str(tmp_path / "test.db"))
    yield st
    st.close()
