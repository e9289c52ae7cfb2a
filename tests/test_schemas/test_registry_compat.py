"""Compatibility is enforced where the schemas live: `schemas register` sets BACKWARD_TRANSITIVE on the registry
(globally and per subject), so the registry refuses a breaking Cart (409), and `schemas check` checks the
contract against the registry's registered versions too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnichannel.stack import StackInfo
from schemas.errors import RegistryError
from schemas.loader import canonical_json
from schemas.publish import COMPATIBILITY, check_registered, register_all
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import catalogue_for

CART = "omnichannel.output.Cart"


def _breaking_cart() -> str:
    """The Cart with ``version`` long -> string and a new field without a default: old carts become unreadable."""
    cart: dict[str, Any] = json.loads(canonical_json(CART))
    for field in cart["fields"]:
        if field["name"] == "version":
            field["type"] = "string"
    cart["fields"].append({"name": "channel_count", "type": "int"})
    return json.dumps(cart)


def _carts_subject(namespace: str) -> str:
    return f"{namespace}.customer.carts-value"


def _cli_check(stack: StackInfo, namespace: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
    env |= {"SCHEMA_REGISTRY_URL": stack.registry.address, "OMNICHANNEL_NAMESPACE": namespace}
    argv = [sys.executable, "-m", "omnichannel.cli", "schemas", "check"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_register_sets_backward_transitive_and_the_registry_refuses_a_breaking_cart(stack: StackInfo) -> None:
    namespace = f"compat{uuid.uuid4().hex[:8]}"
    registry = ConfluentSchemaRegistry(stack.registry.address)
    specs = catalogue_for(namespace)
    assert not any(registry.has_subject(spec.subject) for spec in specs)
    register_all(registry, specs)
    assert all(registry.has_subject(spec.subject) for spec in specs)
    assert registry.compatibility() == COMPATIBILITY
    assert {registry.compatibility(spec.subject) for spec in specs} == {COMPATIBILITY}

    url = f"{stack.registry.address}/subjects/{_carts_subject(namespace)}/versions"
    answer = httpx.post(url, json={"schema": _breaking_cart()}, timeout=30)
    assert answer.status_code == 409, answer.text
    with pytest.raises(RegistryError, match="HTTP 409"):
        registry.register(_carts_subject(namespace), _breaking_cart())
    assert [n for n, _ in registry.versions(_carts_subject(namespace))] == [1], "nothing new was registered"

    assert not any(check_registered(registry, specs).values())
    ok = _cli_check(stack, namespace)
    assert ok.returncode == 0, ok.stderr
    assert "every version registered at" in ok.stdout


def test_schemas_check_fails_when_the_contract_cannot_read_a_registered_version(stack: StackInfo) -> None:
    # A registry holding carts the current contract cannot read (registered under this subject before the
    # contract caught up): `schemas check` must refuse, naming the subject and the field.
    namespace = f"compat{uuid.uuid4().hex[:8]}"
    registry = ConfluentSchemaRegistry(stack.registry.address)
    registry.register(_carts_subject(namespace), _breaking_cart())
    found = check_registered(registry, catalogue_for(namespace))[_carts_subject(namespace)]
    assert any("version" in problem.path for problem in found), found
    broken = _cli_check(stack, namespace)
    assert broken.returncode == 1, broken.stdout
    assert _carts_subject(namespace) in broken.stderr and "registry v1" in broken.stderr


@pytest.mark.parametrize("command", [["worker"], ["serve", "--port", "0"]], ids=["worker", "serve"])
def test_a_producer_refuses_to_start_when_the_contract_is_not_registered(
    stack: StackInfo, tmp_path: Path, command: list[str]
) -> None:
    namespace = f"unreg{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.address,
        "SCHEMA_REGISTRY_URL": stack.registry.address,
        "REDIS_URL": stack.redis.address,
        "OMNICHANNEL_NAMESPACE": namespace,
        "OMNICHANNEL_PARTITIONS": "1",
        "OMNICHANNEL_STATE_DIR": str(tmp_path),
        "OMNICHANNEL_DEV": "1",
    }
    argv = [sys.executable, "-m", "omnichannel.cli", *command]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "run `omnichannel schemas register`" in result.stderr and f"{namespace}." in result.stderr
    registry = ConfluentSchemaRegistry(stack.registry.address)
    # The listing may be a first page only (Apicurio: 1,000 subjects): the topics' own subjects are asked for too.
    listed = {s for s in registry.subjects() if s.startswith(f"{namespace}.")}
    registered = listed | {spec.subject for spec in catalogue_for(namespace) if registry.has_subject(spec.subject)}
    assert not registered, "a producer registered a schema"
