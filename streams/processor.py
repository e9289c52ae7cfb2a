"""The stream worker's one stage as a batch function, free of Faust (the agent in :mod:`streams.app` is a shell).

:class:`FoldStage` (channel topics -> Redis, ``events.by_customer``, ``identity.links``, ``customer.carts``,
``customer.state``, journeys): decode, check business rules, then hand the batch to the
:class:`~streams.cluster_engine.ClusterEngine`, which adds each event to its identity cluster's log and re-folds
the cluster (identity, carts, records, journeys) in event-time order. See docs/stream-processing.md.

Delivery: Kafka gives at-least-once; effects are exactly-once because the state is a function of the *set*
of events in a cluster's log, written in one atomic step: a replayed or duplicated event is already in the
set. Outputs are sent for every event of the batch, whether new or replayed (a crash between the Redis commit
and the Kafka sends re-sends them; records carry deterministic ids, compacted topics keep the latest).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis

from schemas.codec import AvroCodec
from schemas.errors import DecodeError
from schemas.loader import EVENT_FULLNAME
from streams.cluster_engine import ClusterEngine, ClusterOutcome, NewItem, StoredProfile, digest
from streams.cluster_store import RedisClusterStore
from streams.config import ProcessorConfig
from streams.domain.cart import validate_cart_event
from streams.domain.errors import DomainError
from streams.domain.fold import DueCheck, due_item, event_item, ident, parse_ident
from streams.domain.identity import (
    Identifier,
    Link,
    LinkReason,
    customer_id_from_key,
    founder_of,
    identifiers_of,
)
from streams.domain.stock import validate_stock_event
from streams.journeys.processing import JourneyOutput, JourneyProcessor
from streams.journeys.store import JourneyStore
from streams.keys import Keys
from streams.records import Incoming, Outgoing

__all__ = [
    "BY_CUSTOMER",
    "CARTS",
    "DEAD_LETTERS",
    "ERASURE_AUDIT",
    "IDENTITY_LINKS",
    "STATE",
    "FoldStage",
    "Sink",
    "fold_stage_on_redis",
    "without_identity",
]

log = logging.getLogger(__name__)

BY_CUSTOMER = "events.by_customer"
IDENTITY_LINKS = "identity.links"
CARTS = "customer.carts"
STATE = "customer.state"
DEAD_LETTERS = "deadletter.events"
ERASURE_AUDIT = "erasure.audit"

#: Event types about things, not people: they carry no customer identity and are not dead-lettered for it.
_NOT_ABOUT_A_CUSTOMER = frozenset({"stock_level_changed"})

_NO_IDENTITY = (
    "no usable identity: the event carries no customer id, loyalty card, e-mail/phone hash, anonymous id or "
    "customer-owned device id (blocked placeholders and unlinked identifiers do not count)"
)


class Sink(Protocol):
    """Where outputs go: ``send`` may buffer; ``send_and_wait`` returns once Kafka acknowledged."""

    async def send(self, records: Sequence[Outgoing]) -> None: ...

    async def send_and_wait(self, records: Sequence[Outgoing]) -> None: ...


Clock = Callable[[], int]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _subject(event: dict[str, Any]) -> str | None:
    """The profile an erasure request names by customer id (None: it names the subject otherwise)."""
    customer_id = (event.get("identities") or {}).get("customer_id")
    return f"customer:{customer_id}" if customer_id else None


def _route(outcomes: Sequence[ClusterOutcome], item_id: str) -> str | None:
    for outcome in outcomes:
        if item_id in outcome.result.routes:
            return outcome.result.routes[item_id]
    return None


def without_identity(event: dict[str, Any]) -> bool:
    """True for events that legitimately carry no customer identity (stock levels)."""
    return event.get("event_type") in _NOT_ABOUT_A_CUSTOMER


class _DeadLetters:
    def __init__(self, codec: AvroCodec, topic_name: Callable[[str], str], clock: Clock) -> None:
        self._codec = codec
        self._topic_name = topic_name
        self._clock = clock

    def record(self, rec: Incoming, stage: str, reason: str, event_id: str | None = None) -> Outgoing:
        log.warning("dead-lettered", extra={"stage": stage, "topic": rec.topic, "offset": rec.offset, "reason": reason})
        failed = {
            "stage": stage,
            "reason": reason,
            "topic": rec.topic,
            "partition": rec.partition,
            "offset": rec.offset,
            "raw_key": rec.key,
            "raw_value": rec.value,
            "event_id": event_id,
            "failed_at_ms": self._clock(),
        }
        subject = f"{self._topic_name(DEAD_LETTERS)}-value"
        value = self._codec.encode(subject, "omnichannel.output.FailedEvent", failed)
        return Outgoing(DEAD_LETTERS, (rec.key or b"").decode(errors="replace"), value)


class FoldStage:
    """Decode, validate, and fold each event into its cluster (see the module docstring)."""

    def __init__(
        self,
        codec: AvroCodec,
        engine: ClusterEngine,
        config: ProcessorConfig,
        topic_name: Callable[[str], str],
        clock: Clock = _now_ms,
        on_stock: Callable[[Sequence[dict[str, Any]]], Awaitable[object]] | None = None,
        on_applied: Callable[[Sequence[Incoming]], Awaitable[None]] | None = None,
        journeys: tuple[JourneyProcessor, JourneyStore] | None = None,
        on_erased: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self._codec = codec
        self._engine = engine
        self._config = config
        self._topic_name = topic_name
        self._clock = clock
        self._dead = _DeadLetters(codec, topic_name, clock)
        self._on_stock = on_stock
        self._on_applied = on_applied
        self._journeys = journeys
        self._on_erased = on_erased

    async def process(self, batch: Sequence[Incoming], sink: Sink) -> None:
        outputs: list[Outgoing] = []
        ready: dict[str, Incoming] = {}
        news: list[NewItem] = []
        stock: list[dict[str, Any]] = []
        candidates: list[tuple[Incoming, dict[str, Any], tuple[Identifier, ...], tuple[str, ...]]] = []
        rules = self._config.identity_rules
        for rec in batch:
            try:
                event = self._codec.decode(rec.value or b"", EVENT_FULLNAME)
            except DecodeError as exc:
                outputs.append(self._dead.record(rec, "decode", str(exc)))
                continue
            try:
                validate_cart_event(event)
                validate_stock_event(event)
            except DomainError as exc:
                outputs.append(self._dead.record(rec, "business-rule", str(exc), event["event_id"]))
                continue
            if without_identity(event):
                stock.append(event)  # stock levels feed the availability view, not a customer
                continue
            found = identifiers_of(event, rules)
            if not found:
                outputs.append(self._dead.record(rec, "identity", _NO_IDENTITY, event["event_id"]))
                continue
            candidates.append((rec, event, found, tuple(ident(i) for i in found)))
        denied = await self._engine.denied({i for *_, ids in candidates for i in ids})
        erasures: list[dict[str, Any]] = []
        for rec, event, found, identifiers in candidates:
            if denied.intersection(identifiers):
                # Someone erased: a replay or a late record must not bring them back (nor copy them anywhere).
                log.info("record of an erased identifier dropped", extra={"topic": rec.topic, "offset": rec.offset})
                if event.get("event_type") == "erasure_requested":
                    erasures.append(event)  # already carried out: carry it out (a no-op) and report it again
                continue
            if event.get("event_type") == "erasure_requested":
                erasures.append(event)
            ready.setdefault(event["event_id"], rec)  # a duplicate in one batch is sent on once
            # The engine folds with config.fold_rules (these identity rules): the fold need not read them again.
            news.append(NewItem(event_item(event, found), identifiers))
        if stock and self._on_stock is not None:
            # Before this batch's offsets can be committed; each level is written only if newer (replay-safe).
            await self._on_stock(stock)
        outcomes, journey_out = await self._engine.apply(news)
        routed = self._outputs(outcomes, journey_out, ready, outputs)
        await self._apply_journeys(outcomes, journey_out, routed)
        for event in erasures:
            key = _subject(event) or _route(outcomes, event["event_id"])
            if key is not None:
                outputs.extend(await self._erase(key, str(event["payload"].get("request_id") or event["event_id"])))
        await sink.send(outputs)
        if self._on_applied is not None:
            await self._on_applied(batch)

    async def apply_dues(self, dues: Sequence[DueCheck], sink: Sink) -> None:
        """Fold follow-up checks that came due into their profiles' clusters (sent by the journeys timer)."""
        news: list[NewItem] = []
        for due in dues:
            founder = founder_of(due.profile_key)
            if founder is None:
                log.warning("due check for a malformed profile key dropped", extra={"key": due.profile_key})
                continue
            news.append(NewItem(due_item(due), (ident(founder),)))
        outcomes, journey_out = await self._engine.apply(news)
        outputs: list[Outgoing] = []
        routed = self._outputs(outcomes, journey_out, {}, outputs)
        await self._apply_journeys(outcomes, journey_out, routed)
        await sink.send_and_wait(outputs)

    async def refold(self, identifier: Identifier, sink: Sink, link: Link | None = None) -> None:
        """Fold the cluster of ``identifier`` again (after an unlink) and publish what changed.

        ``link``: the unlinked identifier's own record. Every other identifier whose profile the re-fold changed
        (a phone that was the customer's only through the unlinked e-mail) gets a record too, with the same
        reason and id, so the last ``identity.links`` record of each identifier says where it is now.
        """
        outcomes, journey_out = await self._engine.apply([NewItem(None, (ident(identifier),))])
        outputs: list[Outgoing] = [self._link_record(link)] if link is not None else []
        cause = link.event_id if link is not None else f"refold:{ident(identifier)}"
        at_ms = link.at_ms if link is not None else self._clock()
        skip = {ident(link.identifier)} if link is not None else set()
        for outcome in outcomes:
            outputs.extend(self._relink_records(outcome, "unlinked", cause, at_ms, skip))
        routed = self._outputs(outcomes, journey_out, {}, outputs, relink=False)
        await self._apply_journeys(outcomes, journey_out, routed)
        await sink.send_and_wait(outputs)

    async def _erase(self, profile_key: str, request_id: str) -> list[Outgoing]:
        """Carry out an erasure (see :meth:`ClusterEngine.erase`); returns tombstones, updates and the audit."""
        erasure, journey_out = await self._engine.erase(profile_key)
        outputs: list[Outgoing] = []
        for key in sorted(erasure.profiles):
            outputs += [Outgoing(CARTS, key, None), Outgoing(STATE, key, None)]
        outputs += [Outgoing(IDENTITY_LINKS, i, None) for i in sorted(erasure.identifiers)]
        if erasure.outcome is not None:
            for key in sorted(erasure.outcome.changed):
                outputs.extend(self._state_records(key, erasure.outcome.derived[key]))
            if self._journeys is not None and journey_out is not None:
                processor, store = self._journeys
                for key in sorted(erasure.profiles):
                    held = erasure.outcome.before.get(key)
                    if held is not None and held.customer is not None:
                        processor.forget(key, held.customer, journey_out)
                await store.apply([journey_out.effects])
        status = {
            "request_id": request_id,
            "status": "done" if erasure.profiles else "nothing_held",
            "subject_sha256": hashlib.sha256(profile_key.encode()).hexdigest(),
            "events_erased": erasure.events,
            "profiles_erased": len(erasure.profiles),
            "identifiers_erased": len(erasure.identifiers),
            "completed_at_ms": self._clock(),
        }
        # The deny-list's digests go on the audit too, so `omnichannel rebuild` can restore it before a replay.
        audit = {**status, "denied_sha256": sorted(digest(i) for i in erasure.identifiers)}
        subject = f"{self._topic_name(ERASURE_AUDIT)}-value"
        outputs.append(
            Outgoing(ERASURE_AUDIT, request_id, self._codec.encode(subject, "omnichannel.output.ErasureAudit", audit))
        )
        log.info("erasure carried out", extra={k: v for k, v in status.items() if k != "subject_sha256"})
        if self._on_erased is not None:
            await self._on_erased(request_id, status)
        return outputs

    # ------------------------------------------------------------------------------------------------------

    def _outputs(
        self,
        outcomes: Sequence[ClusterOutcome],
        journey_out: JourneyOutput | None,
        ready: dict[str, Incoming],
        outputs: list[Outgoing],
        *,
        relink: bool = True,
    ) -> set[str]:
        """Records for Kafka; returns the profile keys the batch's items were applied to. ``relink``: add the
        records that correct identifiers a fold of the whole log left elsewhere (reason ``refolded``; the unlink
        sends its own, reason ``unlinked``)."""
        routed: set[str] = set()
        position = {event_id: n for n, event_id in enumerate(ready)}
        for outcome in outcomes:
            result = outcome.result
            # This cluster's events of the batch, in batch order (not every event against every cluster).
            for event_id in sorted((i for i in result.routes if i in position), key=position.__getitem__):
                rec = ready[event_id]
                key = result.routes[event_id]
                if key is None:
                    outputs.append(self._dead.record(rec, "identity", _NO_IDENTITY, event_id))
                elif event_id in result.rejected:
                    outputs.append(self._dead.record(rec, "business-rule", result.rejected[event_id], event_id))
                else:
                    routed.add(key)
                    outputs.append(Outgoing(BY_CUSTOMER, key, rec.value or b""))
            routed.update(k for i, k in result.routes.items() if k is not None and i not in ready)  # due checks
            outputs.extend(self._link_record(link) for link in result.links)
            if relink and outcome.relinks:
                cause = next((i for i in ready if i in result.routes), None) or f"refold:{outcome.cid}"
                outputs.extend(self._relink_records(outcome, "refolded", cause, self._clock()))
            for key in sorted(set(outcome.changed) | {k for k in outcome.derived if k in routed}):
                # A changed profile sends what changed of it (its other half was sent when it last changed); an
                # unchanged one the batch touched is a replay (a crash before its sends): both are sent again.
                held = outcome.before.get(key) if key in outcome.changed else None
                outputs.extend(self._state_records(key, outcome.derived[key], held))
        if journey_out is not None:
            outputs.extend(journey_out.records)
        return routed

    async def _apply_journeys(
        self, outcomes: Sequence[ClusterOutcome], journey_out: JourneyOutput | None, routed: set[str]
    ) -> None:
        if self._journeys is None or journey_out is None:
            return
        processor, store = self._journeys
        for outcome in outcomes:
            for key in sorted(set(outcome.changed) | {k for k in outcome.derived if k in routed}):
                now = outcome.derived[key]
                held = outcome.before.get(key, StoredProfile())
                # Unchanged (a replay after a crash): re-assert the schedule and typology from scratch.
                before = held if key in outcome.changed else StoredProfile()
                processor.finish(
                    key,
                    before.customer,
                    now.customer,
                    was_merged=before.merged_into is not None,
                    merged=now.merged_into is not None,
                    out=journey_out,
                )
        await store.apply([journey_out.effects])

    def _relink_records(
        self, outcome: ClusterOutcome, reason: LinkReason, cause: str, at_ms: int, skip: Collection[str] = ()
    ) -> list[Outgoing]:
        """One record per identifier of ``outcome.relinks`` (but ``skip``): a merge into where it is now, an
        unmerge from the profile its last record named when it is in none, or its tombstone ("no link", as an
        erasure leaves) when that profile is unknown."""
        records: list[Outgoing] = []
        for identifier, (said, now) in sorted(outcome.relinks.items()):
            if identifier in skip:
                continue
            if now is not None:
                link = Link("merge", parse_ident(identifier), now, said, reason, cause, at_ms)
            elif said is not None:
                link = Link("unmerge", parse_ident(identifier), said, None, reason, cause, at_ms)
            else:
                records.append(Outgoing(IDENTITY_LINKS, identifier, None))
                continue
            records.append(self._link_record(link))
        return records

    def _link_record(self, link: Link) -> Outgoing:
        record = {
            "action": link.action,
            "identifier_type": link.identifier.type,
            "identifier_value": link.identifier.value,
            "customer_id": customer_id_from_key(link.profile_key) or link.profile_key,
            "previous_customer_id": (
                None if link.previous_key is None else customer_id_from_key(link.previous_key) or link.previous_key
            ),
            "reason": link.reason,
            "event_id": link.event_id,
            "at_ms": link.at_ms,
        }
        subject = f"{self._topic_name(IDENTITY_LINKS)}-value"
        value = self._codec.encode(subject, "omnichannel.output.IdentityLink", record)
        return Outgoing(IDENTITY_LINKS, f"{link.identifier.type}:{link.identifier.value}", value)

    def _state_records(self, key: str, profile: StoredProfile, held: StoredProfile | None = None) -> list[Outgoing]:
        """The cart and record of ``profile``; with ``held`` (what was last published), only those that differ
        (an unchanged part is ``held``'s own object: see ``streams.cluster_engine._settled``)."""
        records: list[Outgoing] = []
        if profile.cart is not None and (held is None or held.cart is not profile.cart):
            subject = f"{self._topic_name(CARTS)}-value"
            # strict=False: records of the domain's own to_avro_dict, whose shape its tests pin (a third of the cost)
            value = self._codec.encode(subject, "omnichannel.output.Cart", profile.cart.to_avro_dict(), strict=False)
            records.append(Outgoing(CARTS, key, value))
        if profile.customer is not None and (held is None or held.customer is not profile.customer):
            subject = f"{self._topic_name(STATE)}-value"
            record = profile.customer.to_avro_dict()
            value = self._codec.encode(subject, "omnichannel.output.CustomerState", record, strict=False)
            records.append(Outgoing(STATE, key, value))
        return records


def fold_stage_on_redis(
    codec: AvroCodec,
    redis: Redis,
    keys: Keys,
    config: ProcessorConfig,
    topic_name: Callable[[str], str],
    journey_store: JourneyStore | None = None,
    **hooks: Any,
) -> FoldStage:
    """The worker's stage on Redis, wired as the worker, ``omnichannel rebuild`` and the unlink use it: the merge
    core's cluster store and engine with the journeys riding along. ``hooks``: :class:`FoldStage`'s ``on_stock``,
    ``on_applied``, ``on_erased``, ``clock``."""
    journeys = JourneyProcessor(codec, config.journeys, topic_name, keys)
    engine = ClusterEngine(RedisClusterStore(redis, keys), config.fold_rules, journeys)
    store = journey_store if journey_store is not None else JourneyStore(redis, keys)
    return FoldStage(codec, engine, config, topic_name, journeys=(journeys, store), **hooks)
