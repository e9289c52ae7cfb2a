"""The OpenAPI document describes the whole HTTP API: an answer schema and an example for every operation, every
status it answers with the project's error body, and the API-key scheme Swagger UI's Authorize button uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_check import problems

from api.server import create_server
from connectors.config import CollectorConfig
from connectors.publisher import publisher_for
from omnichannel.settings import Settings

ERROR = {"$ref": "#/components/schemas/Error"}
#: Operations anyone may call: the probes, and the webhooks their providers sign (HMAC) instead of a key.
PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("post", "/v1/webhooks/email"), ("post", "/v1/webhooks/sms")}


@pytest.fixture(scope="module")
def spec(registered: Settings) -> Iterator[dict[str, Any]]:
    config = CollectorConfig.from_env({"OMNICHANNEL_DEV": "1"})
    with (
        publisher_for(registered, 5) as publisher,
        TestClient(create_server(registered, config, publisher)) as client,
    ):
        answer = client.get("/openapi.json")
        assert answer.status_code == 200
        yield answer.json()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post"):
                yield method, path, operation


def _media(response: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from response.get("content", {}).items()


def test_every_operation_documents_a_success_schema_with_an_example(spec: dict[str, Any]) -> None:
    operations = list(_operations(spec))
    assert len(operations) >= 16, [f"{m} {p}" for m, p, _ in operations]
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        successes = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        assert successes, f"{where} documents no 2xx answer"
        for code, response in successes.items():
            media = list(_media(response))
            assert media, f"{where} {code} has no content"
            for kind, content in media:
                assert content.get("schema"), f"{where} {code} {kind}: no schema"
                assert "example" in content or "examples" in content, f"{where} {code} {kind}: no example"


def test_errors_use_the_project_error_body_and_no_422_of_fastapi(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in str(spec), "FastAPI's validation body is documented, the API never sends it"
    for method, path, operation in _operations(spec):
        for code, response in operation["responses"].items():
            if code.startswith("2") or (path, code) == ("/readyz", "503"):  # the probe's 503 is its report
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == ERROR, f"{method.upper()} {path} {code} is not the Error body"
            assert content["example"]["error"] and content["example"]["detail"], f"{method.upper()} {path} {code}"
        get_without_body = method == "get" or "requestBody" not in operation
        if get_without_body:
            assert "422" not in operation["responses"], f"{method.upper()} {path}: no body, no 422"


def test_every_keyed_operation_documents_401_and_the_api_key_scheme(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header", "name": "X-Api-Key"}
    assert {"ApiKey": []} in spec["security"], "the default: every operation needs a key"
    for method, path, operation in _operations(spec):
        security = operation.get("security", spec["security"])
        if (method, path) in PUBLIC:
            assert security == [] or path.startswith("/v1/webhooks/"), f"{method.upper()} {path} should be open"
        else:
            assert {"ApiKey": []} in security, f"{method.upper()} {path} does not declare the API key"
        if (method, path) not in {("get", "/healthz"), ("get", "/readyz")}:
            assert "401" in operation["responses"], f"{method.upper()} {path} does not document 401"


def test_every_documented_example_matches_its_schema(spec: dict[str, Any]) -> None:
    checked = 0
    for method, path, operation in _operations(spec):
        for code, response in operation["responses"].items():
            for kind, content in _media(response):
                if kind != "application/json":
                    continue
                found = problems(spec, content["schema"], content["example"])
                assert not found, f"{method.upper()} {path} {code}: {found}"
                checked += 1
    assert checked >= 60


def test_the_read_statuses_are_the_ones_the_routes_answer(spec: dict[str, Any]) -> None:
    def statuses(method: str, path: str) -> set[str]:
        return set(spec["paths"][path][method]["responses"])

    assert statuses("get", "/v1/customers/{customer_id}") == {"200", "401", "403", "404", "503"}
    assert statuses("get", "/v1/identities/{identifier_type}/{value}") == {"200", "400", "401", "403", "404", "503"}
    assert statuses("get", "/v1/stores/{store_id}/availability") == {"200", "400", "401", "503"}, "any key: no 403"
    assert statuses("post", "/v1/identities/{identifier_type}/{value}/unlink") == {"200", "400", "401", "403", "503"}
    redis_down = spec["paths"]["/v1/customers/{customer_id}"]["get"]["responses"]["503"]
    assert "Retry-After" in redis_down["headers"]
