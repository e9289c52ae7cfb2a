"""Undo a wrong link: ``omnichannel identities unlink TYPE VALUE`` and ``POST /v1/identities/{type}/{value}/unlink``.

The identifier goes into the operator's unlinked set, and its cluster is folded again without it: every
profile it had joined is recomputed from its own events (carts, records, journeys), the changes are published
on ``customer.carts`` / ``customer.state``, and an ``unmerge`` record with reason ``unlinked`` goes to
``identity.links``. Events that carry the identifier later do not link through it either. The unlink is an
input of the fold like any event, so a replay of every topic gives the same split.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from omnichannel.errors import OmnichannelError
from omnichannel.redis_clients import async_redis
from omnichannel.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import ConfluentSchemaRegistry
from streams.cluster_store import RedisClusterStore
from streams.config import ProcessorConfig
from streams.domain.fold import ident
from streams.domain.identity import IDENTIFIER_TYPES, Identifier, Link
from streams.kafka_sink import KafkaSink
from streams.keys import SINGLE_SLOT_TAG, Keys
from streams.processor import fold_stage_on_redis

__all__ = ["UnlinkReport", "unlink"]


@dataclass(frozen=True)
class UnlinkReport:
    """What an unlink did: the profile the identifier belonged to (None: it was not linked)."""

    identifier: Identifier
    previous_profile: str | None
    request_id: str


async def unlink(settings: Settings, config: ProcessorConfig, identifier_type: str, value: str) -> UnlinkReport:
    """Unlink one identifier (see the module docstring). Safe to run twice."""
    if identifier_type not in IDENTIFIER_TYPES:
        raise OmnichannelError(f"unknown identifier type {identifier_type!r}: use one of {', '.join(IDENTIFIER_TYPES)}")
    if identifier_type == "customer_id":
        raise OmnichannelError(
            "a customer id defines its profile and cannot be unlinked; unlink the identifier that was wrongly "
            "linked to it (e.g. email_hash, device_id)"
        )
    assert settings.redis_url and settings.schema_registry_url
    identifier = Identifier(identifier_type, value)
    keys = Keys(settings.namespace, single_slot=settings.redis_cluster)
    redis = async_redis(settings.redis_url, slot_of=SINGLE_SLOT_TAG, decode_responses=True)
    try:
        codec = AvroCodec(
            ConfluentSchemaRegistry(settings.schema_registry_url, basic_auth=settings.schema_registry_basic_auth)
        )
        stage = fold_stage_on_redis(codec, redis, keys, config, settings.topic)
        previous = await redis.get(keys.owner(ident(identifier)))
        await RedisClusterStore(redis, keys).unlink(ident(identifier))
        request_id = f"unlink:{uuid.uuid4()}"
        link = None
        if previous is not None:
            link = Link("unmerge", identifier, str(previous), None, "unlinked", request_id, int(time.time() * 1000))
        sink = KafkaSink(settings)
        try:
            await stage.refold(identifier, sink, link)
        finally:
            sink.close()
        return UnlinkReport(identifier, None if previous is None else str(previous), request_id)
    finally:
        await redis.aclose()
