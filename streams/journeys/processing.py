"""The journeys step of the fold: pure journey decisions turned into records and Redis writes.

:func:`streams.domain.fold.fold` calls a :class:`JourneyProcessor` (its :class:`~streams.domain.fold.FoldHooks`)
while it replays a cluster's items, so journeys share the fold's guarantees: the journey memory lives in the
customer record (re-derived from the cluster's events, merged at the point of a login, erased with the record),
and what the items of the batch being processed decide leaves as

- records: ``customer.triggers`` (``FollowUpTrigger``) and ``customer.attribution`` (``AttributionRecord``),
  sent after the cluster's commit; a crash in between makes the replay send them again with the same
  ``trigger_id`` / ``conversion_event_id`` (the idempotency keys for their consumers);
- idempotent Redis writes (:class:`~streams.journeys.store.JourneyEffects`): the schedule of due checks, the
  matrix and typology sets, the dropped-item sets.

A due check reaches the fold as an item of the cluster's log (claimed by the timer,
:mod:`streams.journeys.timer`), so it is decided in order with the profile's events: an order that happened
before the check cancels the abandoned-cart trigger, one after cannot un-send it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from schemas.codec import AvroCodec
from schemas.topics import CHANNELS
from streams.domain.cart import Cart
from streams.domain.customer import CustomerState
from streams.domain.evolve import evolve
from streams.domain.fold import DueCheck
from streams.domain.identity import customer_id_from_key
from streams.domain.journey import (
    Attribution,
    Due,
    FollowUp,
    JourneyRules,
    JourneyStep,
    on_due,
    on_event,
    pending_dues,
    settle,
)
from streams.domain.segments import SEGMENTS
from streams.domain.typology import TYPOLOGIES, classify
from streams.journeys.store import JourneyEffects, schedule_member
from streams.keys import Keys
from streams.records import Outgoing

__all__ = ["ATTRIBUTION", "TRIGGERS", "JourneyOutput", "JourneyProcessor"]

log = logging.getLogger(__name__)

TRIGGERS: Final = "customer.triggers"
ATTRIBUTION: Final = "customer.attribution"


@dataclass
class JourneyOutput:
    """What folding one profile's batch decided for journeys."""

    records: list[Outgoing] = field(default_factory=list)
    effects: JourneyEffects = field(default_factory=JourneyEffects)


class JourneyProcessor:
    """Journey decisions for the state stage (see the module docstring); holds no state of its own."""

    def __init__(self, codec: AvroCodec, rules: JourneyRules, topic_name: Callable[[str], str], keys: Keys) -> None:
        self._codec = codec
        self._rules = rules
        self._topic_name = topic_name
        self._keys = keys

    @property
    def rules(self) -> JourneyRules:
        return self._rules

    def on_event(
        self,
        key: str,
        event: Mapping[str, Any],
        cart_before: Cart,
        cart_after: Cart,
        customer: CustomerState,
        out: JourneyOutput,
    ) -> CustomerState:
        """``customer`` has ``event`` applied; returns it with its journeys and typology brought up to date."""
        if customer.erased_at_ms is not None and event["occurred_at_ms"] < customer.erased_at_ms:
            return customer  # ignored by the record, ignored here: a late event cannot bring erased data back
        customer_id = customer_id_from_key(key)
        if event.get("event_type") == "erasure_requested":
            if customer_id is not None:
                out.effects.removes.extend((k, customer_id) for k in self._personal_sets())
            return customer
        step = on_event(
            customer.journey, event, cart_before, cart_after, identified=customer_id is not None, rules=self._rules
        )
        if not cart_after.lines and any(i.kind == "cart" for i in customer.open_interactions):
            # Emptied line by line (or expired): the record cannot tell from the event alone, the cart can.
            kept = tuple(i for i in customer.open_interactions if i.kind != "cart")
            customer = replace(customer, open_interactions=kept)
        return self._take(key, customer, step, out)

    def new_output(self) -> JourneyOutput:
        return JourneyOutput()

    def replay_output(self, out: JourneyOutput) -> JourneyOutput:
        """For items already processed: their records are not sent again, their idempotent effects are."""
        return JourneyOutput(records=[], effects=out.effects)

    def on_merge(
        self, key: str, absorbed: str, merge_id: str, cart: Cart, customer: CustomerState, out: JourneyOutput
    ) -> CustomerState:
        """After a merge into ``key``: the merged cart and record; pending attribution resolves if identified."""
        step = settle(
            customer.journey,
            cart,
            identified=customer_id_from_key(key) is not None,
            origin_id=merge_id,
            rules=self._rules,
        )
        return self._take(key, customer, step, out)

    def on_due(self, key: str, due: DueCheck, cart: Cart, customer: CustomerState, out: JourneyOutput) -> CustomerState:
        """A check came due (claimed by the timer, folded in order with the profile's events)."""
        check = Due(due.kind, due.episode, due.due_ms, due.fired_at_ms)
        step = on_due(
            customer.journey,
            check,
            cart,
            customer.consent,
            profile_key=key,
            identified=customer_id_from_key(key) is not None,
            rules=self._rules,
        )
        if step.note:
            log.debug("due check changed nothing", extra={"key": key, "kind": due.kind, "note": step.note})
        for reason, episode in step.suppressed:
            log.info("follow-up suppressed", extra={"key": key, "kind": due.kind, "episode": episode, "reason": reason})
        if step.follow_up is not None:
            out.records.append(self._trigger(key, step.follow_up, due.fired_at_ms))
            log.info(
                "follow-up trigger",
                extra={"key": key, "kind": due.kind, "channel": step.follow_up.action_channel},
            )
        return self._take(key, customer, step, out)

    def finish(
        self,
        key: str,
        before: CustomerState | None,
        after: CustomerState | None,
        *,
        was_merged: bool,
        merged: bool,
        out: JourneyOutput,
    ) -> None:
        """At the end of a profile's fold: re-schedule what changed, move the customer between typology and
        segment sets."""
        identified = customer_id_from_key(key) is not None
        old = (
            {}
            if before is None or was_merged
            else pending_dues(before.journey, identified=identified, rules=self._rules)
        )
        new = {} if after is None or merged else pending_dues(after.journey, identified=identified, rules=self._rules)
        for (kind, episode), due_ms in new.items():
            if old.get((kind, episode)) != due_ms:
                out.effects.schedule.append((schedule_member(key, kind, episode), due_ms))
        for kind, episode in old.keys() - new.keys():
            out.effects.schedule.append((schedule_member(key, kind, episode), None))
        customer_id = customer_id_from_key(key)
        if customer_id is None or after is None:
            return
        if after.erased_at_ms is not None and not after.channels:
            out.effects.removes.extend((self._keys.typology(t), customer_id) for t in TYPOLOGIES)
            out.effects.removes.extend((self._keys.segment(s), customer_id) for s in SEGMENTS)
            return
        if before is None or before.typology != after.typology:
            out.effects.removes.extend((self._keys.typology(t), customer_id) for t in TYPOLOGIES if t != after.typology)
            out.effects.adds.append((self._keys.typology(after.typology), customer_id))
        if before is None or before.segments != after.segments:
            out.effects.removes.extend(
                (self._keys.segment(s), customer_id) for s in SEGMENTS if s not in after.segments
            )
            out.effects.adds.extend((self._keys.segment(s), customer_id) for s in after.segments)

    def forget(self, key: str, customer: CustomerState, out: JourneyOutput) -> None:
        """An erased profile: unschedule its pending checks, take its customer id out of every matrix set."""
        identified = customer_id_from_key(key) is not None
        for kind, episode in pending_dues(customer.journey, identified=identified, rules=self._rules):
            out.effects.schedule.append((schedule_member(key, kind, episode), None))
        customer_id = customer_id_from_key(key)
        if customer_id is not None:
            out.effects.removes.extend((k, customer_id) for k in self._personal_sets())

    # ------------------------------------------------------------------------------------------------------

    def _take(self, key: str, customer: CustomerState, step: JourneyStep, out: JourneyOutput) -> CustomerState:
        customer_id = customer_id_from_key(key)
        if customer_id is not None:
            out.effects.adds.extend((self._keys.exposed(c), customer_id) for c in sorted(step.exposed_channels))
            for attribution in step.attributions:
                out.records.append(self._attribution(key, customer_id, attribution))
                response = attribution.conversion.channel
                out.effects.adds.append((self._keys.responded(response), customer_id))
                for action in sorted({c.action_channel for c in attribution.credits if c.weight > 0}):
                    out.effects.adds.append((self._keys.converted(action, response), customer_id))
        for reason, event_id in step.dropped:
            out.effects.adds.append((self._keys.dropped(reason), event_id))
        if step.dropped:
            log.info("attribution items dropped", extra={"key": key, "count": len(step.dropped)})
        typology = classify(tuple(customer.channels), step.journey.cross_journeys)
        if step.journey is customer.journey and typology == customer.typology:
            return customer
        return evolve(customer, journey=step.journey, typology=typology)

    def _personal_sets(self) -> list[str]:
        """Every matrix, typology and segment set a customer id can be in (for erasure)."""
        keys = [self._keys.typology(t) for t in TYPOLOGIES] + [self._keys.segment(s) for s in SEGMENTS]
        keys += [self._keys.exposed(c) for c in CHANNELS] + [self._keys.responded(c) for c in CHANNELS]
        keys += [self._keys.converted(a, r) for a in CHANNELS for r in CHANNELS]
        return keys

    def _trigger(self, key: str, follow_up: FollowUp, fired_at_ms: int) -> Outgoing:
        record = {
            "trigger_id": follow_up.trigger_id,
            "customer_id": customer_id_from_key(key) or key,
            "kind": follow_up.kind,
            "action_channel": follow_up.action_channel,
            "cart_lines": [line.to_avro_dict() for line in follow_up.cart_lines],
            "quote_fields": dict(follow_up.quote_fields),
            "last_channel": follow_up.last_channel,
            "last_step": follow_up.last_step,
            "quiet_since_ms": follow_up.quiet_since_ms,
            "fired_at_ms": fired_at_ms,
            "quote_id": follow_up.quote_id,
            "quote_product": follow_up.quote_product,
        }
        subject = f"{self._topic_name(TRIGGERS)}-value"
        return Outgoing(TRIGGERS, key, self._codec.encode(subject, "omnichannel.output.FollowUpTrigger", record))

    def _attribution(self, key: str, customer_id: str, attribution: Attribution) -> Outgoing:
        conversion = attribution.conversion
        record = {
            "conversion_event_id": conversion.event_id,
            "customer_id": customer_id,
            "response_channel": conversion.channel,
            "conversion_kind": conversion.kind,
            "model": self._rules.attribution.model.value,
            "credits": [
                {
                    "action_channel": c.action_channel,
                    "campaign_id": c.campaign_id,
                    "touch_event_id": c.touch_event_id,
                    "weight": c.weight,
                }
                for c in attribution.credits
            ],
            "at_ms": conversion.at_ms,
        }
        subject = f"{self._topic_name(ATTRIBUTION)}-value"
        value = self._codec.encode(subject, "omnichannel.output.AttributionRecord", record)
        return Outgoing(ATTRIBUTION, key, value)
