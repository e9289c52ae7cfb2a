"""streams.domain stays pure: no Faust, Kafka, Redis, HTTP or I/O imports, and a pinned public surface."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import streams.domain

DOMAIN_DIR = Path(streams.domain.__file__).resolve().parent
MODULES = sorted(DOMAIN_DIR.rglob("*.py"))

# Outside the standard library, the domain may use only the project's root error and itself.
ALLOWED_PROJECT_MODULES = ("streams.domain", "omnichannel.errors")
# Standard-library modules that do I/O or reach the network have no place in pure rules either.
FORBIDDEN_STDLIB = {
    "asyncio",
    "http",
    "importlib",
    "io",
    "os",
    "pathlib",
    "selectors",
    "shutil",
    "socket",
    "ssl",
    "subprocess",
    "threading",
    "time",
    "urllib",
}
# Named explicitly so the failure message is obvious even if one of these were vendored into the stdlib list.
FORBIDDEN_THIRD_PARTY = {
    "aiohttp",
    "aiokafka",
    "avro",
    "confluent_kafka",
    "fastapi",
    "fastavro",
    "faust",
    "httpx",
    "kafka",
    "mode",
    "redis",
    "requests",
    "starlette",
    "uvicorn",
}


def imported_modules(path: Path) -> list[str]:
    """Absolute names of every module a file imports (relative imports resolved against streams.domain)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = "streams.domain"
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.append(f"{base}.{node.module}" if node.module else base)
            else:
                assert node.module is not None
                names.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            names.append("<__import__>")
    return names


def test_the_scan_finds_every_module() -> None:
    assert {p.name for p in MODULES} >= {
        "__init__.py",
        "cart.py",
        "customer.py",
        "dedupe.py",
        "errors.py",
        "identity.py",
    }


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_domain_imports_only_the_standard_library_and_itself(path: Path) -> None:
    for name in imported_modules(path):
        root = name.split(".")[0]
        assert root not in FORBIDDEN_THIRD_PARTY, f"{path.name} imports {name}: the domain must stay pure"
        assert root not in FORBIDDEN_STDLIB, f"{path.name} imports {name}: no I/O in the domain"
        allowed = root == "__future__" or root in sys.stdlib_module_names
        allowed = allowed or any(name == m or name.startswith(m + ".") for m in ALLOWED_PROJECT_MODULES)
        assert allowed, f"{path.name} imports {name}: only the standard library, streams.domain, omnichannel.errors"


def test_init_imports_only_from_the_domain() -> None:
    for name in imported_modules(DOMAIN_DIR / "__init__.py"):
        assert name.startswith("streams.domain."), name


def test_the_scanner_catches_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("import faust\nfrom redis.asyncio import Redis\nfrom . import cart\nx = __import__('os')\n")
    assert imported_modules(sample) == ["faust", "redis.asyncio", "streams.domain", "<__import__>"]


def test_importing_the_domain_loads_no_infrastructure() -> None:
    # A fresh interpreter: what importing streams.domain drags in, whatever this test session imported.
    code = (
        "import sys, streams.domain; "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN_THIRD_PARTY)!r}); "
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == ""


EXPECTED_EXPORTS = {
    "CART_EVENT_TYPES",
    "DEFAULT_BLOCKED_VALUES",
    "IDENTIFIER_TYPES",
    "MAX_LINE_QUANTITY",
    "PASSIVE_EVENT_TYPES",
    "PASSIVE_TOUCH_ACTIONS",
    "PRODUCT_ID_PATTERN",
    "Cart",
    "CartLine",
    "CartRuleError",
    "CartStatus",
    "ChannelUsage",
    "CustomerLimits",
    "CustomerState",
    "DomainError",
    "Identifier",
    "IdentifierType",
    "IdentityGraph",
    "IdentityRuleError",
    "IdentityRules",
    "Link",
    "LinkAction",
    "LinkReason",
    "MergeMode",
    "Observation",
    "SeenEvents",
    "Verbatim",
    "apply_cart_event",
    "apply_customer_event",
    "customer_id_from_key",
    "founder_of",
    "expire_if_idle",
    "identifiers_of",
    "merge_carts",
    "merge_customer_states",
    "observe",
    "release",
    "profile_key_of",
    "validate_cart_event",
}


def test_public_surface_is_pinned() -> None:
    assert set(streams.domain.__all__) == EXPECTED_EXPORTS
    for name in streams.domain.__all__:
        assert hasattr(streams.domain, name), name


def test_public_callables_and_classes_have_docstrings() -> None:
    for name in streams.domain.__all__:
        obj = getattr(streams.domain, name)
        if callable(obj) and hasattr(obj, "__module__") and obj.__module__.startswith("streams.domain"):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
