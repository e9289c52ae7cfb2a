"""The identity graph kept in Redis, changed by the pure rules of :mod:`streams.domain.identity`.

One batch of events is resolved at a time: the identifiers the batch mentions and the profiles owning them
are read (few round trips), :func:`observe` decides event by event in memory, and the changes are written in
one MULTI/EXEC guarded by WATCH, so two workers racing on the same profiles cannot both win (the loser
re-reads and decides again). What was decided for an event that changed the graph is recorded under its
event id: a replayed event gets the same answer, so the cart hand-over it triggered is never lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from omnichannel.errors import OmnichannelError
from streams.domain.identity import Identifier, IdentityGraph, IdentityRules, Link, observe
from streams.keys import Keys

__all__ = ["IdentityStore", "Resolution", "ResolveRequest"]

log = logging.getLogger(__name__)

_DECISION_TTL_S = 7 * 24 * 3600  # as long as the channel topics keep records that could be replayed
_MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class ResolveRequest:
    """One event's identifiers, in batch order."""

    event_id: str
    at_ms: int
    identifiers: tuple[Identifier, ...]


@dataclass(frozen=True)
class Resolution:
    """Where an event belongs (``key`` None: no usable identifier), and what changed because of it."""

    key: str | None
    links: tuple[Link, ...] = ()
    absorbed: tuple[str, ...] = ()


def _ident(identifier: Identifier) -> str:
    return f"{identifier.type}:{identifier.value}"


def _parse_ident(text: str) -> Identifier:
    kind, _, value = text.partition(":")
    return Identifier(kind, value)  # type: ignore[arg-type]  # written by _ident, so the type is valid


def _link_to_json(link: Link) -> dict[str, Any]:
    return {
        "action": link.action,
        "identifier": _ident(link.identifier),
        "profile_key": link.profile_key,
        "previous_key": link.previous_key,
        "reason": link.reason,
        "event_id": link.event_id,
        "at_ms": link.at_ms,
    }


def _link_from_json(raw: dict[str, Any]) -> Link:
    return Link(
        raw["action"],
        _parse_ident(raw["identifier"]),
        raw["profile_key"],
        raw["previous_key"],
        raw["reason"],
        raw["event_id"],
        raw["at_ms"],
    )


class _WorkingGraph:
    """The batch's graph, changed in place event by event.

    ``observe`` is pure and copies the graph it is given, so it is handed only the profiles an event touches
    (those owning its identifiers): the cost per event stays constant instead of growing with the batch.
    """

    def __init__(self, graph: IdentityGraph) -> None:
        self.owners = dict(graph.owners)
        self.profiles = dict(graph.profiles)
        self.changed = False

    def around(self, identifiers: tuple[Identifier, ...]) -> IdentityGraph:
        keys = {self.owners[i] for i in identifiers if i in self.owners}
        profiles = {k: self.profiles[k] for k in keys}
        return IdentityGraph(
            owners=MappingProxyType({m: k for k, ms in profiles.items() for m in ms}),
            profiles=MappingProxyType(profiles),
        )

    def replace(self, old: IdentityGraph, new: IdentityGraph) -> None:
        for identifier in old.owners:
            del self.owners[identifier]
        for key in old.profiles:
            del self.profiles[key]
        self.owners.update(new.owners)
        self.profiles.update(new.profiles)
        self.changed = True

    def freeze(self) -> IdentityGraph:
        return IdentityGraph(owners=MappingProxyType(self.owners), profiles=MappingProxyType(self.profiles))


class IdentityStore:
    """Resolves batches of events against the graph in Redis (see the module docstring)."""

    def __init__(self, client: Redis, keys: Keys, rules: IdentityRules) -> None:
        self._redis = client
        self._keys = keys
        self._rules = rules

    async def resolve(self, requests: Sequence[ResolveRequest]) -> list[Resolution]:
        """Decide every request in order and persist the graph changes atomically."""
        if not any(r.identifiers for r in requests):
            return [Resolution(None) for _ in requests]
        for _attempt in range(_MAX_ATTEMPTS):
            try:
                return await self._attempt(requests)
            except WatchError:
                log.info("identity graph changed concurrently; resolving the batch again")
        raise OmnichannelError(
            f"identity resolution lost {_MAX_ATTEMPTS} races in a row; another worker is writing the same "
            "profiles in a loop - check that each partition has one owner"
        )

    async def _attempt(self, requests: Sequence[ResolveRequest]) -> list[Resolution]:
        idents = sorted({_ident(i) for r in requests for i in r.identifiers})
        owner_keys = [self._keys.owner(i) for i in idents]
        decision_keys = [self._keys.decision(r.event_id) for r in requests]
        async with self._redis.pipeline(transaction=True) as tx:
            await tx.watch(*owner_keys)
            reads = self._redis.pipeline(transaction=False)
            reads.mget(owner_keys)
            reads.mget(decision_keys)
            owners_raw, decisions_raw = await reads.execute()
            owners = {i: o for i, o in zip(idents, owners_raw, strict=True) if o is not None}
            profiles = sorted(set(owners.values()))
            members: dict[str, frozenset[Identifier]] = {}
            if profiles:
                await tx.watch(*(self._keys.members(p) for p in profiles))
                reads = self._redis.pipeline(transaction=False)
                for profile in profiles:
                    reads.smembers(self._keys.members(profile))
                for profile, raw in zip(profiles, await reads.execute(), strict=True):
                    members[profile] = frozenset(_parse_ident(m) for m in raw)
            before = IdentityGraph(
                owners=MappingProxyType({m: p for p, ms in members.items() for m in ms}),
                profiles=MappingProxyType(members),
            )
            working = _WorkingGraph(before)
            results: list[Resolution] = []
            decisions: dict[str, Resolution] = {}
            for request, recorded in zip(requests, decisions_raw, strict=True):
                if recorded is not None:  # a replay: the graph already holds its effect
                    raw = json.loads(recorded)
                    results.append(
                        Resolution(raw["key"], tuple(_link_from_json(x) for x in raw["links"]), tuple(raw["absorbed"]))
                    )
                    continue
                local = working.around(request.identifiers)
                observation = observe(local, request.identifiers, self._rules, request.event_id, request.at_ms)
                if observation.graph is not local:
                    working.replace(local, observation.graph)
                resolution = Resolution(observation.key, observation.links, observation.absorbed)
                results.append(resolution)
                if observation.links or observation.absorbed:
                    decisions[request.event_id] = resolution
            if not working.changed:
                await tx.reset()  # type: ignore[no-untyped-call]
                return results
            tx.multi()  # type: ignore[no-untyped-call]
            self._write_changes(tx, before, working.freeze())
            for event_id, resolution in decisions.items():
                payload = {
                    "key": resolution.key,
                    "links": [_link_to_json(x) for x in resolution.links],
                    "absorbed": list(resolution.absorbed),
                }
                tx.set(self._keys.decision(event_id), json.dumps(payload), ex=_DECISION_TTL_S)
            await tx.execute()
        return results

    def _write_changes(self, tx: Any, before: IdentityGraph, after: IdentityGraph) -> None:
        for identifier in set(before.owners) | set(after.owners):
            old, new = before.owners.get(identifier), after.owners.get(identifier)
            if old != new:
                if new is None:
                    tx.delete(self._keys.owner(_ident(identifier)))
                else:
                    tx.set(self._keys.owner(_ident(identifier)), new)
        for profile in set(before.profiles) | set(after.profiles):
            old_members, new_members = before.members(profile), after.members(profile)
            if old_members != new_members:
                key = self._keys.members(profile)
                tx.delete(key)
                if new_members:
                    tx.sadd(key, *sorted(_ident(m) for m in new_members))

    async def owner_of(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        """Current profile of each identifier that has one (for the read API)."""
        wanted = list(identifiers)
        raw = await self._redis.mget([self._keys.owner(_ident(i)) for i in wanted])
        return {i: str(o) for i, o in zip(wanted, raw, strict=True) if o is not None}
