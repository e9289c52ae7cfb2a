"""The test suite's own layout rules (pytest's default import mode puts each test folder on sys.path)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_imports_a_conftest_by_name() -> None:
    offenders = [p for p in TESTS.rglob("*.py") if re.search(r"^\s*(from|import) conftest\b", p.read_text(), re.M)]
    assert offenders == [], "import helpers from a uniquely named module instead"


def test_module_basenames_are_unique_and_folders_are_not_packages() -> None:
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert [name for name, count in names.items() if count > 1] == []
    assert list(TESTS.rglob("__init__.py")) == []
