"""The topic catalogue: every topic the backbone reads or writes, in one place.

Keys are UTF-8 strings (no schema): the strongest identity on channel topics (``customer:<id>``,
``anonymous:<id>`` or ``device:<id>``), the canonical customer key on unified topics. Values are Avro in
the Confluent wire format, registered under ``<topic>-value`` (TopicNameStrategy), so a subscriber
needs only the registry URL to decode them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = [
    "CATALOGUE",
    "CHANNELS",
    "Cleanup",
    "TopicSpec",
    "by_name",
    "catalogue_for",
    "channel_topic",
    "subject_for",
]

DAY_MS = 24 * 60 * 60 * 1000

#: Channel symbols of ``omnichannel.event.Channel``; each has its own input topic (S9: a misbehaving
#: channel cannot stall another's partitions).
CHANNELS = (
    "web",
    "mobile_app",
    "tablet",
    "store",
    "call_centre",
    "email",
    "sms",
    "push",
    "postal",
    "back_office",
    "other",
)

EVENT = "omnichannel.event.Event"


class Cleanup(StrEnum):
    """Kafka ``cleanup.policy``: compacted topics keep the latest value per key (state), delete ages out."""

    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True)
class TopicSpec:
    """One topic: name, what its key is, its value schema, and its storage settings."""

    name: str
    key: str
    value_schema: str
    cleanup: Cleanup
    retention_ms: int | None
    doc: str
    partitions: int | None = None  # None: the deployment-wide default (OMNICHANNEL_PARTITIONS)

    @property
    def subject(self) -> str:
        return subject_for(self.name)

    def config(self) -> dict[str, str]:
        """Topic-level configuration for AdminClient.create_topics."""
        config = {"cleanup.policy": self.cleanup.value}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config


def subject_for(topic: str) -> str:
    """Schema Registry subject of a topic's values (Confluent TopicNameStrategy)."""
    return f"{topic}-value"


def channel_topic(channel: str) -> str:
    """Input topic of a channel, e.g. ``channel.mobile_app.events``."""
    return f"channel.{channel}.events"


_CHANNEL_KEY = (
    "strongest identity: customer:<id>, else anonymous:<id>, else device:<id>; stock levels stock:<store>:<product>"
)

CATALOGUE: tuple[TopicSpec, ...] = (
    *(
        TopicSpec(
            channel_topic(c),
            _CHANNEL_KEY,
            EVENT,
            Cleanup.DELETE,
            7 * DAY_MS,
            f"Events from the {c} channel, as its connector published them.",
        )
        for c in CHANNELS
    ),
    TopicSpec(
        "events.by_customer",
        "canonical customer key",
        EVENT,
        Cleanup.DELETE,
        7 * DAY_MS,
        "Every accepted event re-keyed to the profile it was applied to (customer:<id> once identified), for "
        "subscribers that want one customer's events from every channel in one place.",
    ),
    TopicSpec(
        "customer.state",
        "canonical customer key",
        "omnichannel.output.CustomerState",
        Cleanup.COMPACT,
        None,
        "Latest real-time customer record per customer (compacted).",
    ),
    TopicSpec(
        "customer.carts",
        "cart key (customer key, or anonymous/device key before login)",
        "omnichannel.output.Cart",
        Cleanup.COMPACT,
        None,
        "Latest cart per cart key (compacted); an anonymous cart merged into a customer's is published closed.",
    ),
    TopicSpec(
        "identity.links",
        "identifier as <type>:<value>",
        "omnichannel.output.IdentityLink",
        Cleanup.COMPACT,
        None,
        "Identity graph changes: which customer an identifier belongs to (merge) or no longer (unmerge).",
    ),
    TopicSpec(
        "customer.triggers",
        "canonical customer key",
        "omnichannel.output.FollowUpTrigger",
        Cleanup.DELETE,
        7 * DAY_MS,
        "Follow-up triggers (abandoned cart, unfinished quote) for the channel that should act.",
    ),
    TopicSpec(
        "customer.attribution",
        "canonical customer key",
        "omnichannel.output.AttributionRecord",
        Cleanup.DELETE,
        30 * DAY_MS,
        "One attribution record per conversion: which action channels get the credit.",
    ),
    TopicSpec(
        "erasure.audit",
        "erasure request id",
        "omnichannel.output.ErasureAudit",
        Cleanup.DELETE,
        -1,  # forever: the proof outlives everything it proves was deleted
        "Proof that each right-to-erasure request was carried out; no personal data (kept forever).",
    ),
    TopicSpec(
        "deadletter.events",
        "the failed record's original key",
        "omnichannel.output.FailedEvent",
        Cleanup.DELETE,
        30 * DAY_MS,
        "Records that could not be decoded or broke a business rule, with stage, reason and raw bytes.",
    ),
)

_BY_NAME = {spec.name: spec for spec in CATALOGUE}


def catalogue_for(namespace: str) -> tuple[TopicSpec, ...]:
    """The catalogue with every topic name prefixed by ``<namespace>.`` (unchanged when it is empty)."""
    if not namespace:
        return CATALOGUE
    return tuple(replace(spec, name=f"{namespace}.{spec.name}") for spec in CATALOGUE)


def by_name(topic: str) -> TopicSpec:
    """The catalogue entry of ``topic``; ``KeyError`` names the known topics."""
    try:
        return _BY_NAME[topic]
    except KeyError:
        raise KeyError(f"{topic!r} is not in the topic catalogue ({', '.join(sorted(_BY_NAME))})") from None
