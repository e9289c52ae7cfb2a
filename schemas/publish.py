"""Registering the catalogue's value schemas in the Schema Registry, with compatibility enforced there.

Registration is a deployment step (``omnichannel schemas register``): it sets BACKWARD_TRANSITIVE globally and
on every subject, so the registry itself refuses (HTTP 409) a schema that could not read every earlier
version, whoever registers it. It is the only registration: producers (the collector, the worker, the
importers, the SDK) only look up the id of the schema already registered, and stop with
:class:`SchemaNotRegisteredError` when it is not there (:func:`require_registered` checks them all at start).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from schemas.compat import Incompatibility, check_backward_transitive
from schemas.errors import SchemaNotRegisteredError
from schemas.loader import canonical_json
from schemas.registry import ConfluentSchemaRegistry, SchemaRegistry
from schemas.topics import CATALOGUE, TopicSpec

__all__ = ["COMPATIBILITY", "check_registered", "register_all", "require_registered"]

#: The level every subject keeps: a new schema reads data written with any earlier version.
COMPATIBILITY: Final = "BACKWARD_TRANSITIVE"


def register_all(registry: ConfluentSchemaRegistry, specs: Iterable[TopicSpec] = CATALOGUE) -> dict[str, int]:
    """Set :data:`COMPATIBILITY` globally and per subject, and register each ``<topic>-value``; subject -> id.

    An existing subject gets its level before the new version is registered, so the registry checks the
    new version against every earlier one; a new subject gets it right after its first version. Registering
    an identical schema again returns the same id, so this is safe to repeat.
    """
    registry.set_compatibility(COMPATIBILITY)
    ids: dict[str, int] = {}
    for spec in specs:
        existing = registry.has_subject(spec.subject)
        if existing:
            registry.set_compatibility(COMPATIBILITY, spec.subject)
        ids[spec.subject] = registry.register(spec.subject, canonical_json(spec.value_schema))
        if not existing:
            registry.set_compatibility(COMPATIBILITY, spec.subject)
    return ids


def require_registered(registry: SchemaRegistry, specs: Iterable[TopicSpec] = CATALOGUE) -> dict[str, int]:
    """Look up (never register) each topic's current value schema; subject -> id.

    :class:`SchemaNotRegisteredError` naming every subject that lacks it, so a process that would write
    those topics refuses to start instead of failing on its first record.
    """
    ids: dict[str, int] = {}
    missing: list[str] = []
    for spec in specs:
        try:
            ids[spec.subject] = registry.lookup(spec.subject, canonical_json(spec.value_schema))
        except SchemaNotRegisteredError:
            missing.append(spec.subject)
    if missing:
        named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise SchemaNotRegisteredError(
            f"{len(missing)} subject(s) lack the current schema ({named}): producers never register "
            "schemas; run `omnichannel schemas register` (with this process's SCHEMA_REGISTRY_URL and "
            "OMNICHANNEL_NAMESPACE), then start it again",
            subject=missing[0],
        )
    return ids


def check_registered(
    registry: ConfluentSchemaRegistry, specs: Iterable[TopicSpec] = CATALOGUE
) -> dict[str, list[Incompatibility]]:
    """Check each topic's current value schema against every version registered under its subject.

    Returns ``subject -> problems`` (empty: the current contract reads all the data those versions wrote;
    a subject with no version yet has nothing to break).
    """
    results: dict[str, list[Incompatibility]] = {}
    for spec in specs:
        registered = registry.versions(spec.subject)
        results[spec.subject] = check_backward_transitive(
            canonical_json(spec.value_schema),
            [text for _, text in registered],
            labels=[f"registry v{number}" for number, _ in registered],
        )
    return results
