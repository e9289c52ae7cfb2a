"""OpenAPI documentation of the collector, generated from the Avro contract so the two cannot drift.

:func:`component_schemas` turns every named Avro type the Event uses into a JSON Schema component
(``#/components/schemas/omnichannel.event.Device`` ...) and adds the collector's own shapes: the input
event (``EventInput``: the Event with the fields the collector fills made optional), the batch, and the
answers.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Final

from schemas.loader import EVENT_FULLNAME, EVENT_TYPES, load
from schemas.samples import sample_event

__all__ = [
    "ERROR_RESPONSES",
    "KEY_SECURITY",
    "SECURITY_SCHEMES",
    "avro_components",
    "batch_example",
    "component_schemas",
    "error_response",
    "event_example",
    "ref",
]

#: Fields of the Event a sender may omit: the collector fills them (see connectors.envelope.normalise).
_FILLED: Final = frozenset(
    {"event_id", "received_at_ms", "channel", "identities", "consent", "source_system"}
    | {"device", "location", "actor", "session_id"}
)
_INT_BOUNDS: Final = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


#: How a client authenticates (the ``Authorize`` button of ``/docs``): every operation needs one of these
#: unless it says otherwise (``security: []``: probes, and the signed webhooks, which authenticate by HMAC).
SECURITY_SCHEMES: Final[dict[str, dict[str, str]]] = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "A channel key publishes its channels' events; a read key reads; an admin key administers.",
    },
    "Bearer": {"type": "http", "scheme": "bearer", "description": "The same key as `Authorization: Bearer <key>`."},
    "ApiKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "api_key",
        "description": "Only for the live cart stream: a browser's EventSource cannot send headers.",
    },
}
KEY_SECURITY: Final[list[dict[str, list[str]]]] = [{"ApiKey": []}, {"Bearer": []}]


def ref(name: str) -> dict[str, str]:
    """A JSON reference to component ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def avro_components(fullname: str) -> dict[str, Any]:
    """JSON Schema components of the Avro record ``fullname`` and every named type it uses, keyed by full name."""
    components: dict[str, Any] = {}
    _convert(load(fullname), components, {})
    return components


def _convert(schema: Any, components: dict[str, Any], named: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, str):
        if schema in named:
            return ref(schema)
        return _primitive(schema)
    if isinstance(schema, list):
        branches = [_convert(branch, components, named) for branch in schema]
        return {"anyOf": branches}
    kind = schema["type"]
    if kind == "record":
        name = schema["name"]
        named[name] = schema
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in schema["fields"]:
            prop = _convert(field["type"], components, named)
            if "doc" in field:
                prop = {**prop, "description": field["doc"]} if "$ref" not in prop else {"allOf": [prop], **_doc(field)}
            if "default" in field:
                prop["default"] = field["default"]
            else:
                required.append(field["name"])
            properties[field["name"]] = prop
        components[name] = {
            "type": "object",
            "title": name.rsplit(".", 1)[-1],
            **_doc(schema),
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        return ref(name)
    if kind == "enum":
        name = schema["name"]
        named[name] = schema
        components[name] = {
            "type": "string",
            "title": name.rsplit(".", 1)[-1],
            **_doc(schema),
            "enum": schema["symbols"],
        }
        return ref(name)
    if kind == "array":
        return {"type": "array", "items": _convert(schema["items"], components, named)}
    if kind == "map":
        return {"type": "object", "additionalProperties": _convert(schema["values"], components, named)}
    if isinstance(kind, (dict, list)):
        return _convert(kind, components, named)
    return _primitive(kind)


def _doc(schema: dict[str, Any]) -> dict[str, str]:
    return {"description": schema["doc"]} if "doc" in schema else {}


def _primitive(kind: str) -> dict[str, Any]:
    if kind in _INT_BOUNDS:
        low, high = _INT_BOUNDS[kind]
        return {"type": "integer", "format": "int32" if kind == "int" else "int64", "minimum": low, "maximum": high}
    return {
        "null": {"type": "null"},
        "boolean": {"type": "boolean"},
        "float": {"type": "number"},
        "double": {"type": "number"},
        "string": {"type": "string"},
        "bytes": {"type": "string"},
    }[kind]


@functools.lru_cache(maxsize=1)
def _components() -> dict[str, Any]:
    components: dict[str, Any] = {}
    _convert(load(EVENT_FULLNAME), components, {})
    event = copy.deepcopy(components[EVENT_FULLNAME])
    event["title"] = "EventInput"
    event["description"] = (
        "One event as a channel sends it to the collector. The collector fills event_id (a UUID) when absent, "
        "always stamps received_at_ms with its own clock, takes channel from the API key when the key has one "
        "channel, and defaults identities members, device, location, actor and session_id to null, consent to "
        "{} and source_system to 'collector'. payload holds the fields of the payload record named by "
        "event_type (e.g. cart_line_added -> omnichannel.event.CartLineAdded). Unknown fields are rejected."
    )
    event["required"] = [name for name in event["required"] if name not in _FILLED]
    event["properties"]["event_type"] = {**event["properties"]["event_type"], "enum": list(EVENT_TYPES)}
    event["properties"]["payload"] = {
        "description": event["properties"]["payload"].get("description", ""),
        "anyOf": [ref(name) for name in EVENT_TYPES.values()],
    }
    for name in _FILLED & set(event["properties"]):
        prop = event["properties"][name]
        if "anyOf" not in prop or {"type": "null"} not in prop["anyOf"]:
            described = {"description": prop.pop("description")} if "description" in prop else {}
            event["properties"][name] = {"anyOf": [prop, {"type": "null"}], **described}
    event["example"] = event_example()
    components["EventInput"] = event
    components["EventBatch"] = {
        "type": "object",
        "title": "EventBatch",
        "description": "Several events in one request; each gets its own result.",
        "properties": {"events": {"type": "array", "items": ref("EventInput"), "minItems": 1}},
        "required": ["events"],
        "additionalProperties": False,
        "example": batch_example(),
    }
    components.update(_answers())
    return components


def component_schemas() -> dict[str, Any]:
    """Every component schema of the collector's OpenAPI document (a fresh copy)."""
    return copy.deepcopy(_components())


def event_example() -> dict[str, Any]:
    """A web event as a browser or server sends it (the collector fills the rest)."""
    event = sample_event("cart_line_added", channel="web")
    for filled in ("received_at_ms", "source_system"):
        event.pop(filled)
    event["event_id"] = "3f1c0b1e-5a43-4c1e-9a57-2b3f9c1d7e20"
    event["device"] = {"device_id": "browser-8d2f", "kind": "desktop_browser", "role": "customer_owned"}
    return event


def batch_example() -> dict[str, Any]:
    """A batch of two web events."""
    first = event_example()
    second = {**event_example(), "event_type": "product_viewed", "event_id": "9b2e4c1a-0d7f-4e55-8a0c-1f2e3d4c5b6a"}
    second["payload"] = {"product_id": "SKU-1001", "category": "lighting", "unit_price_cents": 4999}
    return {"events": [first, second]}


def _answers() -> dict[str, Any]:
    problem = {
        "type": "object",
        "properties": {"path": {"type": "string"}, "reason": {"type": "string"}},
        "required": ["path", "reason"],
    }
    return {
        "Problem": {**problem, "title": "Problem", "description": "Where (dotted field path) and what is wrong."},
        "Error": {
            "type": "object",
            "title": "Error",
            "description": "Every non-2xx answer: a stable error code, a sentence, and the field problems if any.",
            "properties": {
                "error": {"type": "string", "example": "invalid_event"},
                "detail": {"type": "string"},
                "problems": {"type": "array", "items": ref("Problem")},
            },
            "required": ["error", "detail", "problems"],
        },
        "Accepted": {
            "type": "object",
            "title": "Accepted",
            "description": "The event is stored in Kafka (acknowledged by every in-sync replica).",
            "properties": {
                "status": {"type": "string", "enum": ["accepted"]},
                "event_id": {"type": "string"},
                "topic": {"type": "string"},
                "partition": {"type": "integer"},
                "offset": {"type": "integer"},
            },
            "required": ["status", "event_id", "topic", "partition", "offset"],
        },
        "WebhookAccepted": {
            "type": "object",
            "title": "WebhookAccepted",
            "description": "Every event the native payload maps to is stored in Kafka.",
            "properties": {
                "accepted": {"type": "integer"},
                "event_ids": {"type": "array", "items": {"type": "string"}},
                "ignored": {"type": "array", "items": ref("Problem")},
            },
            "required": ["accepted", "event_ids", "ignored"],
        },
        "Health": {
            "type": "object",
            "title": "Health",
            "properties": {"status": {"type": "string", "enum": ["ok"]}},
            "required": ["status"],
        },
        "BatchResult": {
            "type": "object",
            "title": "BatchResult",
            "description": "One result per event, in request order.",
            "properties": {
                "accepted": {"type": "integer"},
                "rejected": {"type": "integer"},
                "unavailable": {"type": "integer"},
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "status": {"type": "string", "enum": ["accepted", "rejected", "unavailable", "refused"]},
                            "event_id": {"type": ["string", "null"]},
                            "topic": {"type": "string"},
                            "partition": {"type": "integer"},
                            "offset": {"type": "integer"},
                            "problems": {"type": "array", "items": ref("Problem")},
                            "detail": {"type": "string"},
                        },
                        "required": ["index", "status"],
                    },
                },
            },
            "required": ["accepted", "rejected", "unavailable", "results"],
        },
    }


def error_response(description: str, example: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI response with the project's error body (``Error``) and an example of it."""
    return {"description": description, "content": {"application/json": {"schema": ref("Error"), "example": example}}}


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: error_response(
        "Malformed JSON (the parse error names line and column), or a body of the wrong shape.",
        {
            "error": "malformed_json",
            "detail": "the body is not valid JSON: unexpected character: line 1 column 2 (char 1)",
            "problems": [],
        },
    ),
    401: error_response(
        "Missing or unknown API key. Send `Authorization: Bearer <key>` or `X-Api-Key: <key>`.",
        {"error": "unauthenticated", "detail": "unknown API key", "problems": []},
    ),
    403: error_response(
        "The key is valid but not for the event's channel.",
        {
            "error": "forbidden_channel",
            "detail": "this API key may publish web events, not tablet events",
            "problems": [],
        },
    ),
    408: error_response(
        "The body did not arrive within OMNICHANNEL_BODY_TIMEOUT_S (e.g. shorter than its Content-Length), or "
        "the answer could not start within OMNICHANNEL_REQUEST_TIMEOUT_S. Nothing was published.",
        {"error": "body_timeout", "detail": "the request body did not arrive within 10 s", "problems": []},
    ),
    413: error_response(
        "The body exceeds OMNICHANNEL_MAX_BODY_BYTES, or a batch exceeds OMNICHANNEL_MAX_BATCH_EVENTS.",
        {"error": "batch_too_large", "detail": "the batch has 501 events; the limit is 500", "problems": []},
    ),
    422: error_response(
        "The event does not match the contract: every problem is listed with its field path.",
        {
            "error": "invalid_event",
            "detail": "the event does not match the Event contract",
            "problems": [{"path": "payload.quantity", "reason": "expected int, got str 'two'"}],
        },
    ),
    503: {
        **error_response(
            "Kafka did not acknowledge in time; nothing was reported as published. Retry after `Retry-After` "
            "seconds with the same event ids.",
            {"error": "kafka_unavailable", "detail": "Kafka did not acknowledge within 5 s", "problems": []},
        ),
        "headers": {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}},
    },
}
