"""The Schema Registry port and its Confluent-API adapter (Apicurio's ccompat API, Confluent, Karapace)."""

from __future__ import annotations

from typing import Protocol

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas.errors import RegistryError, SchemaNotRegisteredError

__all__ = ["ConfluentSchemaRegistry", "SchemaRegistry"]


#: Confluent error codes of ``POST /subjects/{subject}`` (lookup) for "not there" (Apicurio's ccompat API too).
_SUBJECT_NOT_FOUND, _SCHEMA_NOT_FOUND = 40401, 40403


class SchemaRegistry(Protocol):
    """What the codec needs from a registry: the id of a schema already registered under a subject, and a
    schema by id. Producers never register: that is ``omnichannel schemas register``'s job."""

    def lookup(self, subject: str, schema_text: str) -> int:
        """The id of ``schema_text`` as registered under ``subject``; :class:`SchemaNotRegisteredError` if not."""
        ...

    def schema_text(self, schema_id: int) -> str:
        """The schema text registered under ``schema_id``; :class:`RegistryError` when unknown."""
        ...


class ConfluentSchemaRegistry:
    """:class:`SchemaRegistry` over confluent-kafka's client (which caches ids and schemas itself)."""

    def __init__(self, url: str, *, basic_auth: str | None = None) -> None:
        """``basic_auth``: ``user:password`` when the registry requires HTTP basic auth."""
        self.url = url
        config = {"url": url} | ({"basic.auth.user.info": basic_auth} if basic_auth else {})
        self._client = SchemaRegistryClient(config)

    def register(self, subject: str, schema_text: str) -> int:
        try:
            return int(self._client.register_schema(subject, Schema(schema_text, "AVRO")))
        except SchemaRegistryError as exc:
            raise RegistryError(
                f"the registry at {self.url} refused the schema for subject {subject!r}: "
                f"{exc.error_message} (HTTP {exc.http_status_code}). If it is an incompatible change, "
                "run `omnichannel schemas check` to see which field breaks readers."
            ) from exc
        except Exception as exc:  # connection errors surface as requests/httpx exceptions
            raise RegistryError(f"the registry at {self.url} could not be reached: {exc}") from exc

    def lookup(self, subject: str, schema_text: str) -> int:
        """``POST /subjects/{subject}``: the id of this exact schema under ``subject``; registers nothing."""
        try:
            found = self._client.lookup_schema(subject, Schema(schema_text, "AVRO")).schema_id
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404 or exc.error_code in (_SUBJECT_NOT_FOUND, _SCHEMA_NOT_FOUND):
                missing = (
                    "has no subject" if exc.error_code == _SUBJECT_NOT_FOUND else "has no version of this schema under"
                )
                raise SchemaNotRegisteredError(
                    f"the registry at {self.url} {missing} {subject!r}: producers never register schemas; run "
                    "`omnichannel schemas register` (with this process's SCHEMA_REGISTRY_URL and "
                    "OMNICHANNEL_NAMESPACE), then start it again",
                    subject=subject,
                ) from exc
            raise RegistryError(
                f"the registry at {self.url} refused the lookup of {subject!r}: {exc.error_message} "
                f"(HTTP {exc.http_status_code})"
            ) from exc
        except Exception as exc:
            raise RegistryError(f"the registry at {self.url} could not be reached: {exc}") from exc
        if found is None:
            raise RegistryError(f"the registry at {self.url} answered the lookup of {subject!r} without an id")
        return int(found)

    def schema_text(self, schema_id: int) -> str:
        try:
            return str(self._client.get_schema(schema_id).schema_str)
        except SchemaRegistryError as exc:
            raise RegistryError(
                f"schema id {schema_id} is unknown to the registry at {self.url} ({exc.error_message})"
            ) from exc
        except Exception as exc:
            raise RegistryError(f"the registry at {self.url} could not be reached: {exc}") from exc

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        """Set the compatibility level globally (``subject`` None) or for one subject (``PUT /config[/subject]``)."""
        where = f"subject {subject!r}" if subject else "the global level"
        try:
            self._client.set_compatibility(subject_name=subject, level=level)
        except SchemaRegistryError as exc:
            raise RegistryError(
                f"the registry at {self.url} refused compatibility {level} for {where}: {exc.error_message} "
                f"(HTTP {exc.http_status_code})"
            ) from exc
        except Exception as exc:
            raise RegistryError(f"the registry at {self.url} could not be reached: {exc}") from exc

    def compatibility(self, subject: str | None = None) -> str:
        """The compatibility level in force globally (``subject`` None) or set for one subject."""
        try:
            return str(self._client.get_compatibility(subject_name=subject))
        except SchemaRegistryError as exc:
            raise RegistryError(
                f"the registry at {self.url} has no compatibility level for {subject or 'the global level'}: "
                f"{exc.error_message} (HTTP {exc.http_status_code})"
            ) from exc
        except Exception as exc:
            raise RegistryError(f"the registry at {self.url} could not be reached: {exc}") from exc

    def versions(self, subject: str) -> list[tuple[int, str]]:
        """``(version, schema text)`` of every version registered under ``subject``, oldest first (none: [])."""
        try:
            numbers = sorted(self._client.get_versions(subject))
            return [(n, str(self._client.get_version(subject, n).schema.schema_str)) for n in numbers]
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return []
            raise RegistryError(
                f"the registry at {self.url} could not list the versions of {subject!r}: {exc.error_message}"
            ) from exc
        except Exception as exc:
            raise RegistryError(f"the registry at {self.url} could not be reached: {exc}") from exc

    def delete_subject(self, subject: str) -> bool:
        """Delete ``subject`` and every version of it for good (soft, then hard: ``DELETE ...?permanent=true``).

        False when the registry has no such subject. Only for tearing a namespace down: readers of records
        written with its schemas can no longer decode them.
        """
        try:
            self._client.delete_subject(subject)
            self._client.delete_subject(subject, permanent=True)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return False
            raise RegistryError(
                f"the registry at {self.url} refused to delete {subject!r}: {exc.error_message} "
                f"(HTTP {exc.http_status_code})"
            ) from exc
        except Exception as exc:
            raise RegistryError(f"the registry at {self.url} could not be reached: {exc}") from exc
        return True

    def has_subject(self, subject: str) -> bool:
        """True when ``subject`` holds at least one version. Asks for the subject itself: a registry's subject
        list can be a first page only (Apicurio's ``GET /subjects`` stops at 1,000)."""
        try:
            return bool(self._client.get_versions(subject))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return False
            raise RegistryError(
                f"the registry at {self.url} could not list the versions of {subject!r}: {exc.error_message}"
            ) from exc
        except Exception as exc:
            raise RegistryError(f"the registry at {self.url} could not be reached: {exc}") from exc

    def subjects(self) -> list[str]:
        """The subjects the registry lists (a first page only on some registries: see :meth:`has_subject`)."""
        try:
            return list(self._client.get_subjects())
        except Exception as exc:
            raise RegistryError(f"the registry at {self.url} could not list subjects: {exc}") from exc
