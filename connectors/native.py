"""Helpers for the pure native-payload mappings of the channel adapters.

:class:`Fields` reads a provider's JSON object or form, collecting every problem (with its native path)
instead of stopping at the first, so a rejected webhook names all that is wrong in one answer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from connectors.envelope import IDENTITY_FIELDS
from connectors.errors import InvalidEventError
from connectors.hashing import is_identifier_hash, keyed_email_hash, keyed_phone_hash
from schemas.validation import Problem

__all__ = [
    "Fields",
    "each_message",
    "identities",
    "iso_to_ms",
    "stable_event_id",
]

#: Namespace of the deterministic event ids of connectors: one native event always gets the same id, so a
#: replayed webhook or a re-imported file line is deduplicated downstream (consumers skip known event ids).
_EVENT_ID_NAMESPACE: Final = uuid.UUID("0f6a7c1e-5b0d-4c3e-9a41-7d1f0c2b9e55")
_E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")


def each_message(
    document: Any, one: Callable[[Any, str, list[Problem]], dict[str, Any] | None], what: str
) -> list[dict[str, Any]]:
    """Map one message or a JSON array of them with ``one``; raise every problem at once, paths ``[i].field``."""
    items = document if isinstance(document, list) else [document]
    prefix = "[{}]." if isinstance(document, list) else ""
    problems: list[Problem] = []
    events = [one(item, prefix.format(index), problems) for index, item in enumerate(items)]
    if problems:
        raise InvalidEventError(problems, what=what)
    return [event for event in events if event is not None]


def stable_event_id(*parts: object) -> str:
    """A UUID (v5) derived from what identifies a native event, e.g. ``("email", provider_event_id)``."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def iso_to_ms(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 time with a UTC offset (``Z`` or ``+01:00``); ValueError otherwise."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset: add 'Z' or '+01:00'")
    return int(moment.timestamp() * 1000)


def identities(**known: str | None) -> dict[str, str | None]:
    """A complete ``identities`` record: the given members, every other one null."""
    return {name: known.get(name) or None for name in IDENTITY_FIELDS}


class Fields:
    """Typed reads of one native object; each bad field adds a :class:`Problem` at ``<prefix><name>``.

    Call :meth:`check` once every field is read.
    """

    def __init__(self, data: Any, prefix: str = "", problems: list[Problem] | None = None) -> None:
        self.problems: list[Problem] = [] if problems is None else problems
        self.prefix = prefix
        if isinstance(data, Mapping):
            self.data: Mapping[str, Any] = data
        else:
            self.data = {}
            self.problems.append(Problem(prefix.rstrip(".") or "", f"expected an object, got {type(data).__name__}"))

    def _where(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _missing(self, name: str, required: bool) -> bool:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                self.problems.append(Problem(self._where(name), "required field is missing"))
            return True
        return False

    def text(self, name: str, *, required: bool = True, choices: tuple[str, ...] | None = None) -> str | None:
        """A non-empty string (numbers are accepted as their text), optionally one of ``choices``."""
        if self._missing(name, required):
            return None
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.problems.append(Problem(self._where(name), f"expected text, got {type(value).__name__}"))
            return None
        text = str(value).strip()
        if choices is not None and text not in choices:
            self.problems.append(Problem(self._where(name), f"{text!r} is not one of {', '.join(choices)}"))
            return None
        return text

    def integer(self, name: str, *, required: bool = True, minimum: int | None = None) -> int | None:
        """A whole number (a string of digits is accepted, as forms and CSV carry text)."""
        if self._missing(name, required):
            return None
        value = self.data[name]
        try:
            if isinstance(value, (bool, float)) or not isinstance(value, (int, str)):
                raise ValueError
            number = int(value)
        except ValueError:
            self.problems.append(Problem(self._where(name), f"expected a whole number, got {value!r}"))
            return None
        if not -(2**31) <= number < 2**63:
            self.problems.append(Problem(self._where(name), f"{number} is out of range"))
            return None
        if minimum is not None and number < minimum:
            self.problems.append(Problem(self._where(name), f"must be at least {minimum}, got {number}"))
            return None
        return number

    def timestamp_ms(self, name: str, *, unit: str = "iso", required: bool = True) -> int | None:
        """A time as epoch milliseconds, from ISO 8601 text with an offset (``unit="iso"``) or epoch seconds."""
        if self._missing(name, required):
            return None
        value = self.data[name]
        try:
            if unit == "iso":
                if not isinstance(value, str):
                    raise ValueError(f"expected ISO 8601 text such as '2024-11-23T10:20:00Z', got {value!r}")
                return iso_to_ms(value)
            try:
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise ValueError
                seconds = float(value)
            except ValueError:
                raise ValueError(f"{value!r} is not epoch seconds (e.g. 1732357200)") from None
            if not 0 < seconds < 10**11:
                raise ValueError(f"{value!r} is not epoch seconds (e.g. 1732357200)")
            return int(seconds * 1000)
        except ValueError as exc:
            self.problems.append(Problem(self._where(name), str(exc) or f"not a valid time: {value!r}"))
            return None

    def email_hash(self, hash_name: str, clear_name: str | None = None, *, key: bytes) -> str | None:
        """A 64-hex e-mail hash given by the sender, or the keyed hash of a clear address in ``clear_name``.

        The clear address is never kept: see :mod:`connectors.hashing` for the keyed hash.
        """
        digest = self.text(hash_name, required=False)
        if digest is not None:
            digest = digest.lower()
            if not is_identifier_hash(digest):
                self.problems.append(Problem(self._where(hash_name), "expected 64 hex characters (SHA-256)"))
                return None
            return digest
        clear = self.text(clear_name, required=False) if clear_name else None
        if clear is not None and "@" not in clear:
            self.problems.append(Problem(self._where(str(clear_name)), "not an e-mail address"))
            return None
        return keyed_email_hash(key, clear) if clear else None

    def phone_hash(self, name: str, *, key: bytes, required: bool = False) -> str | None:
        """The keyed hash of an E.164 phone number (e.g. '+447700900123'); the clear number is not kept."""
        number = self.text(name, required=required)
        if number is None:
            return None
        if not _E164.match(number):
            self.problems.append(Problem(self._where(name), f"{number!r} is not an E.164 number like +447700900123"))
            return None
        return keyed_phone_hash(key, number)

    def nested(self, name: str, *, required: bool = True) -> Fields | None:
        """The object under ``name``, read with the same problem list."""
        if self._missing(name, required):
            return None
        return Fields(self.data[name], f"{self._where(name)}.", self.problems)

    def check(self, what: str = "payload") -> None:
        """Raise :class:`InvalidEventError` listing every problem found so far."""
        if self.problems:
            raise InvalidEventError(self.problems, what=what)
