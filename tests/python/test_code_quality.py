"""Lint, format and type checks of the package, as CI runs them (ruff and mypy from the test extra)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON_TREES = ["src", "tests", "benchmarks", "bin"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("check", [("ruff", "check"), ("ruff", "format", "--check")], ids=["lint", "format"])
def test_ruff(check):
    res = _run(*check, *PYTHON_TREES)
    assert res.returncode == 0, (
        f"`ruff {' '.join(check[1:])}` found problems (fix: ruff check --fix / ruff format):\n"
        f"{res.stdout[-4000:]}{res.stderr[-1000:]}"
    )


def test_mypy_type_checks_the_package():
    res = _run("mypy")  # files and settings: [tool.mypy] in pyproject.toml
    assert res.returncode == 0, f"mypy found type errors:\n{res.stdout[-4000:]}{res.stderr[-1000:]}"
