"""Helpers for the CALDB tests: small calibration files and a fresh CALDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from svomflow.calibration.caldb import Caldb


@pytest.fixture
def caldb(tmp_path: Path) -> Caldb:
    """An empty local CALDB in a temporary directory."""
    return Caldb(tmp_path / "caldb")


@pytest.fixture
def make_file(tmp_path: Path):
    """Return a factory writing a small distinct file (``name``, ``content``) and its path."""
    src = tmp_path / "src"
    src.mkdir()

    def _make(name: str, content: str | None = None) -> Path:
        p = src / name
        p.write_text(content if content is not None else f"calibration {name}\n")
        return p

    return _make
