"""Registering the catalogue's value schemas in the Schema Registry (idempotent)."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.loader import canonical_json
from schemas.registry import SchemaRegistry
from schemas.topics import CATALOGUE, TopicSpec

__all__ = ["register_all"]


def register_all(registry: SchemaRegistry, specs: Iterable[TopicSpec] = CATALOGUE) -> dict[str, int]:
    """Register each topic's value schema under ``<topic>-value``; returns subject -> schema id.

    Registering an identical schema again returns the same id, so this is safe to repeat.
    """
    return {spec.subject: registry.register(spec.subject, canonical_json(spec.value_schema)) for spec in specs}
