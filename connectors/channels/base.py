"""What a channel adapter is: a pure mapping from the channel's native payload to Event dicts, plus its I/O.

An adapter module defines one :class:`ChannelAdapter` named ``ADAPTER``; the registry in
:mod:`connectors.channels` lists the modules. Its I/O is either a webhook router (mounted by the collector
under ``/v1/webhooks/<channel>``), a file format (for ``omnichannel import``), or neither (the channel
speaks the collector's own JSON at ``POST /v1/events``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter

from connectors.auth import KeyRing
from connectors.config import CollectorConfig
from connectors.envelope import Clock
from connectors.publisher import Outcome
from schemas.validation import Problem

__all__ = [
    "AsyncPublish",
    "ChannelAdapter",
    "FileFormat",
    "Mapped",
    "WebhookContext",
]


@dataclass(frozen=True)
class Mapped:
    """Events mapped from one native payload, and the native items deliberately not turned into events.

    ``ignored`` uses ``Problem(path, reason)``: e.g. ``Problem("[3]", "event 'deferred' is not tracked")``.
    """

    events: list[dict[str, Any]]
    ignored: list[Problem] = field(default_factory=list)


class AsyncPublish(Protocol):
    """What a webhook needs from the publisher (see :meth:`connectors.publisher.Publisher.publish_many_async`)."""

    def __call__(self, events: Sequence[Mapping[str, Any]], /) -> Awaitable[list[Outcome]]: ...


@dataclass(frozen=True)
class WebhookContext:
    """Everything a webhook router gets from the collector that mounts it."""

    config: CollectorConfig
    keyring: KeyRing
    publish: AsyncPublish
    clock: Clock
    wall_clock_s: Callable[[], float]


@dataclass(frozen=True)
class FileFormat:
    """A batch file format: ``to_event(row)`` maps one parsed line (a CSV row or a JSON object) to an event."""

    to_event: Callable[[Mapping[str, Any]], dict[str, Any]]
    formats: tuple[str, ...] = ("csv", "jsonl")
    description: str = ""


@dataclass(frozen=True)
class ChannelAdapter:
    """One channel's connector: its name in the registry, its Channel symbol and its I/O."""

    name: str
    channel: str
    source_system: str
    summary: str
    webhook: Callable[[WebhookContext], APIRouter] | None = None
    file_format: FileFormat | None = None
