"""Per-channel API keys: which channels the key of a request may publish."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from starlette.datastructures import Headers

from connectors.http import HttpError

__all__ = ["KeyRing", "forbidden"]

_HOW = "send `Authorization: Bearer <key>` or `X-Api-Key: <key>` with the key of your channel"


class KeyRing:
    """Looks keys up by their SHA-256, so a comparison's timing says nothing about the stored keys."""

    def __init__(self, keys: Mapping[str, frozenset[str]]) -> None:
        self._by_digest = {_digest(key): channels for key, channels in keys.items()}

    def channels(self, headers: Headers) -> frozenset[str]:
        """The channels the request's key may publish; 401 when the key is missing or unknown."""
        key = headers.get("x-api-key")
        if key is None:
            authorization = headers.get("authorization", "")
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                key = credentials.strip()
        if not key:
            raise _unauthenticated(f"missing API key: {_HOW}")
        channels = self._by_digest.get(_digest(key))
        if channels is None:
            raise _unauthenticated(f"unknown API key: {_HOW}")
        return channels


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def _unauthenticated(detail: str) -> HttpError:
    return HttpError(401, "unauthenticated", detail, headers={"WWW-Authenticate": 'Bearer realm="omnichannel"'})


def forbidden(channel: str, allowed: frozenset[str]) -> HttpError:
    """403 naming the channel the key may not publish, and the ones it may."""
    return HttpError(
        403,
        "forbidden_channel",
        f"this API key may publish {', '.join(sorted(allowed))} events, not {channel} events",
        extra={"channel": channel},
    )
