"""The two processing stages as batch functions, free of Faust (the agents in :mod:`streams.app` are shells).

Stage 1, :class:`IdentityStage` (channel topics -> ``events.by_customer``): decode, check business rules,
resolve identities, and re-key every event to its canonical profile. A merge sends a ``handover`` command
to the absorbed profile's key: state moves with messages, never with cross-partition reads.

Stage 2, :class:`StateStage` (``events.by_customer`` -> Redis, ``customer.carts``, ``customer.state``):
fold each profile's records into its cart and customer record and write them fenced by offset. With a
:class:`~streams.journeys.processing.JourneyProcessor`, the same fold keeps the journeys (follow-up episodes,
attribution, typology) and answers ``journey_due`` commands; stage 1 routes stock levels to an ``on_stock``
callback (click and collect). See docs/journeys.md.

Delivery: Kafka gives at-least-once. Effects are made exactly-once by
- the per-key offset fence and the applied-event-id set in Redis (replays and duplicates are no-ops);
- commands (hand-overs, transfers, forwards) sent and acknowledged *before* the Redis write that
  consumes their cause, so a crash in between re-sends them (deterministic ids make that harmless);
- state snapshots re-published when a replayed record is fenced off (compacted topics converge).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from schemas.codec import AvroCodec
from schemas.errors import DecodeError, SchemaError
from schemas.loader import EVENT_FULLNAME
from streams.config import ProcessorConfig
from streams.domain.cart import Cart, apply_cart_event, expire_if_idle, merge_carts, validate_cart_event
from streams.domain.customer import CustomerState, apply_customer_event, merge_customer_states
from streams.domain.errors import DomainError
from streams.domain.identity import Link, customer_id_from_key, identifiers_of
from streams.domain.stock import validate_stock_event
from streams.identity_store import IdentityStore, ResolveRequest
from streams.journeys.processing import JOURNEY_DUE, JourneyOutput, JourneyProcessor
from streams.journeys.store import JourneyStore
from streams.records import COMMAND_HEADER, Command, Incoming, Outgoing
from streams.state_json import cart_from_json, cart_to_json, customer_from_json, customer_to_json
from streams.state_store import Snapshot, StateStore, StateWrite

__all__ = [
    "BY_CUSTOMER",
    "CARTS",
    "DEAD_LETTERS",
    "IDENTITY_LINKS",
    "STATE",
    "IdentityStage",
    "Sink",
    "StateStage",
    "without_identity",
]

log = logging.getLogger(__name__)

BY_CUSTOMER = "events.by_customer"
IDENTITY_LINKS = "identity.links"
CARTS = "customer.carts"
STATE = "customer.state"
DEAD_LETTERS = "deadletter.events"

#: Event types about things, not people: they carry no customer identity and are not dead-lettered for it.
_NOT_ABOUT_A_CUSTOMER = frozenset({"stock_level_changed"})


class Sink(Protocol):
    """Where outputs go: ``send`` may buffer; ``send_and_wait`` returns once Kafka acknowledged."""

    async def send(self, records: Sequence[Outgoing]) -> None: ...

    async def send_and_wait(self, records: Sequence[Outgoing]) -> None: ...


Clock = Callable[[], int]


def _now_ms() -> int:
    return int(time.time() * 1000)


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


class IdentityStage:
    """Stage 1: decode, validate, resolve, re-key (see the module docstring)."""

    def __init__(
        self,
        codec: AvroCodec,
        identities: IdentityStore,
        config: ProcessorConfig,
        topic_name: Callable[[str], str],
        clock: Clock = _now_ms,
        on_stock: Callable[[Sequence[dict[str, Any]]], Awaitable[object]] | None = None,
    ) -> None:
        self._codec = codec
        self._identities = identities
        self._config = config
        self._topic_name = topic_name
        self._dead = _DeadLetters(codec, topic_name, clock)
        self._on_stock = on_stock

    async def process(self, batch: Sequence[Incoming], sink: Sink) -> None:
        outputs: list[Outgoing] = []
        ready: list[tuple[Incoming, dict[str, Any]]] = []
        stock: list[dict[str, Any]] = []
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
            ready.append((rec, event))
        if stock and self._on_stock is not None:
            # Before this batch's offsets can be committed; each level is written only if newer, so a replay is
            # harmless.
            await self._on_stock(stock)
        requests = [
            ResolveRequest(e["event_id"], e["occurred_at_ms"], identifiers_of(e, self._config.identity_rules))
            for _, e in ready
        ]
        resolutions = await self._identities.resolve(requests)
        for (rec, event), resolution in zip(ready, resolutions, strict=True):
            if resolution.key is None:
                reason = (
                    "no usable identity: the event carries no customer id, loyalty card, e-mail/phone hash, "
                    "anonymous id or customer-owned device id (blocked placeholders do not count)"
                )
                outputs.append(self._dead.record(rec, "identity", reason, event["event_id"]))
                continue
            outputs.extend(self._link_record(link) for link in resolution.links)
            for absorbed in resolution.absorbed:
                command = Command(
                    "handover", f"handover:{absorbed}>{resolution.key}:{event['event_id']}", resolution.key, absorbed
                )
                outputs.append(command.to_outgoing(BY_CUSTOMER))
            outputs.append(Outgoing(BY_CUSTOMER, resolution.key, rec.value or b""))
        await sink.send(outputs)

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


@dataclass
class _Item:
    rec: Incoming
    item_id: str
    event: dict[str, Any] | None = None
    command: Command | None = None


@dataclass
class _KeyResult:
    write: StateWrite
    commands: list[Outgoing]
    snapshots: list[Outgoing]
    journey: JourneyOutput | None = None


class StateStage:
    """Stage 2: fold records into carts and customer records, fenced (see the module docstring)."""

    def __init__(
        self,
        codec: AvroCodec,
        store: StateStore,
        config: ProcessorConfig,
        topic_name: Callable[[str], str],
        clock: Clock = _now_ms,
        on_applied: Callable[[Sequence[Incoming]], Awaitable[None]] | None = None,
        journeys: tuple[JourneyProcessor, JourneyStore] | None = None,
    ) -> None:
        self._codec = codec
        self._store = store
        self._config = config
        self._topic_name = topic_name
        self._clock = clock
        self._dead = _DeadLetters(codec, topic_name, clock)
        self._on_applied = on_applied
        self._journeys = journeys

    async def process(self, batch: Sequence[Incoming], sink: Sink) -> None:
        dead: list[Outgoing] = []
        by_key: dict[str, list[_Item]] = defaultdict(list)
        for rec in batch:
            key = (rec.key or b"").decode()
            kind = rec.header(COMMAND_HEADER)
            try:
                if kind is not None:
                    command = Command.from_bytes(rec.value or b"{}")
                    by_key[key].append(_Item(rec, command.id, command=command))
                else:
                    event = self._codec.decode(rec.value or b"", EVENT_FULLNAME)
                    by_key[key].append(_Item(rec, event["event_id"], event=event))
            except (SchemaError, ValueError, KeyError) as exc:
                dead.append(self._dead.record(rec, "state-decode", f"{type(exc).__name__}: {exc}"))
        snapshots = await self._store.load({k: [i.item_id for i in items] for k, items in by_key.items()})
        results: list[_KeyResult] = []
        republish: list[Outgoing] = []
        for key, items in by_key.items():
            snapshot = snapshots[key]
            if any(i.rec.offset <= snapshot.fence for i in items):
                republish.extend(self._state_records(key, snapshot.cart, snapshot.customer))
            result = self._fold(key, snapshot, items, dead)
            if result is not None:
                results.append(result)
        # Commands first, acknowledged, then the state that consumed their cause (see module docstring). Journey
        # outputs (triggers, attribution records, idempotent Redis writes) go the same way, for the same reason.
        journey_records = [o for r in results if r.journey is not None for o in r.journey.records]
        await sink.send_and_wait([c for r in results for c in r.commands] + journey_records + dead)
        if self._journeys is not None:
            await self._journeys[1].apply(r.journey.effects for r in results if r.journey is not None)
        applied = await self._store.commit([r.write for r in results])
        outputs = list(republish)
        for result, ok in zip(results, applied, strict=True):
            if ok:
                outputs.extend(result.snapshots)
            else:
                log.warning("stale write fenced off", extra={"key": result.write.key})
        await sink.send(outputs)
        if self._on_applied is not None:
            await self._on_applied(batch)

    def _fold(self, key: str, snapshot: Snapshot, items: list[_Item], dead: list[Outgoing]) -> _KeyResult | None:
        cart, customer, merged_into = snapshot.cart, snapshot.customer, snapshot.merged_into
        cart_changed = customer_changed = False
        journeys = self._journeys[0] if self._journeys is not None else None
        journey_out = JourneyOutput()
        seen = set(snapshot.seen)
        applied: list[tuple[str, int]] = []
        commands: list[Outgoing] = []
        new_fence = snapshot.fence
        for item in sorted(items, key=lambda i: i.rec.offset):
            if item.rec.offset <= snapshot.fence:
                continue  # replayed: already applied
            new_fence = max(new_fence, item.rec.offset)
            if item.item_id in seen:
                continue  # a duplicate at a new offset (a producer retry, a stage-1 replay)
            seen.add(item.item_id)
            applied.append((item.item_id, item.rec.offset))
            if merged_into is not None:
                commands.extend(self._forward(item, merged_into))
                continue
            command = item.command
            if command is not None and command.kind == "handover":
                body = {
                    "cart": cart_to_json(cart) if cart is not None else None,
                    "customer": customer_to_json(customer) if customer is not None else None,
                }
                transfer = Command("transfer", f"transfer:{command.id}", command.target, key, body)
                commands.append(transfer.to_outgoing(BY_CUSTOMER))
                merged_into = command.target
                if cart is not None and cart.lines:
                    cart = replace(cart, status="closed", lines=(), version=cart.version + 1)
                    cart_changed = True
            elif command is not None and command.kind == "transfer":
                mine_cart = cart or Cart(cart_key=key, customer_id=customer_id_from_key(key))
                if command.body.get("cart"):
                    theirs = cart_from_json(command.body["cart"])
                    if theirs.lines:
                        cart = merge_carts(mine_cart, theirs, self._config.merge_mode)
                        cart_changed = True
                if command.body.get("customer"):
                    theirs_state = customer_from_json(command.body["customer"])
                    mine = customer or CustomerState(key=key)
                    customer = merge_customer_states(mine, theirs_state, self._config.customer_limits)
                    customer_changed = True
                if journeys is not None and customer is not None:
                    merged_cart = cart or Cart(cart_key=key, customer_id=customer_id_from_key(key))
                    before = customer
                    customer = journeys.on_transfer(key, command.id, merged_cart, customer, journey_out)
                    customer_changed = customer_changed or customer is not before
            elif command is not None and command.kind == JOURNEY_DUE:
                if journeys is not None and customer is not None:  # checks are only scheduled from a record
                    current = cart or Cart(cart_key=key, customer_id=customer_id_from_key(key))
                    before = customer
                    customer = journeys.on_due(key, command, current, customer, journey_out)
                    customer_changed = customer_changed or customer is not before
            elif item.event is not None:
                event = item.event
                base = cart or Cart(cart_key=key, customer_id=customer_id_from_key(key))
                try:
                    updated = apply_cart_event(
                        expire_if_idle(base, event["occurred_at_ms"], self._config.cart_idle_ms), event
                    )
                except DomainError as exc:
                    dead.append(self._dead.record(item.rec, "business-rule", str(exc), event["event_id"]))
                    continue
                if updated is not base or (cart is None and updated.version):
                    cart, cart_changed = updated, True
                customer = apply_customer_event(customer or CustomerState(key=key), event, self._config.customer_limits)
                customer_changed = True
                if journeys is not None:
                    customer = journeys.on_event(key, event, base, cart or base, customer, journey_out)
        if new_fence == snapshot.fence:
            return None
        if journeys is not None:
            journeys.finish(
                key,
                snapshot.customer,
                customer,
                was_merged=snapshot.merged_into is not None,
                merged=merged_into is not None,
                out=journey_out,
            )
        write = StateWrite(
            key,
            snapshot.fence,
            new_fence,
            merged_into,
            cart if cart_changed else None,
            customer if customer_changed else None,
            applied,
        )
        return _KeyResult(
            write,
            commands,
            self._state_records(key, cart if cart_changed else None, customer if customer_changed else None),
            journey_out,
        )

    def _forward(self, item: _Item, target: str) -> list[Outgoing]:
        """A record for a profile that was absorbed: it now belongs to ``target``."""
        if item.command is not None:
            if item.command.kind == "handover":
                return []  # already handed over
            return [replace(item.command, target=target).to_outgoing(BY_CUSTOMER)]
        return [Outgoing(BY_CUSTOMER, target, item.rec.value or b"")]

    def _state_records(self, key: str, cart: Cart | None, customer: CustomerState | None) -> list[Outgoing]:
        records: list[Outgoing] = []
        if cart is not None:
            subject = f"{self._topic_name(CARTS)}-value"
            records.append(
                Outgoing(CARTS, key, self._codec.encode(subject, "omnichannel.output.Cart", cart.to_avro_dict()))
            )
        if customer is not None:
            subject = f"{self._topic_name(STATE)}-value"
            value = self._codec.encode(
                subject, "omnichannel.output.CustomerState", customer.to_avro_dict(self._clock())
            )
            records.append(Outgoing(STATE, key, value))
        return records
