"""Checking a JSON document against a schema of the app's OpenAPI document (components resolved)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs


def problems(spec: dict[str, Any], schema: dict[str, Any], document: Any) -> list[str]:
    """What is wrong with ``document`` against ``schema`` (which may ``$ref`` the spec's components)."""
    rooted = {**schema, "components": spec["components"]}  # `#/components/...` resolves against this root
    validator = jsonschema_rs.validator_for(rooted)
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(document)]


def answer_problems(spec: dict[str, Any], path: str, method: str, status: int, body: Any) -> list[str]:
    """What is wrong with an actual answer against the one documented for ``method path`` and ``status``."""
    responses = spec["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered {status}, which is not documented"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    return problems(spec, schema, body)
