"""API keys and their scopes: channel keys publish events, read keys read customer data, admin keys administer.

=========  ==============================  ===============================================================
scope      configured by                   may
=========  ==============================  ===============================================================
channel    ``OMNICHANNEL_CHANNEL_KEYS``    publish its own channels' events (``POST /v1/events``, webhooks)
read       ``OMNICHANNEL_READ_KEYS``       read customer records, carts, identities, live carts, attribution
admin      ``OMNICHANNEL_ADMIN_KEYS``      admin operations, and everything a read key may
=========  ==============================  ===============================================================

A store's stock (``/v1/stores/{id}/availability``) is no one's personal data: any configured key reads it.

A channel key cannot read: an app holding one (often shipped inside a mobile app or a web page) must not
be able to look up any customer's data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from starlette.datastructures import Headers

from connectors.http import HttpError

__all__ = ["KeyRing", "forbidden"]

_HOW = "send `Authorization: Bearer <key>` or `X-Api-Key: <key>` with the key of your channel"
_READ = "read"
_ADMIN = "admin"


class KeyRing:
    """Looks keys up by their SHA-256, so a comparison's timing says nothing about the stored keys."""

    def __init__(
        self,
        keys: Mapping[str, frozenset[str]],
        read_keys: Iterable[str] = (),
        admin_keys: Iterable[str] = (),
    ) -> None:
        self._by_digest = {_digest(key): channels for key, channels in keys.items()}
        self._scopes: dict[bytes, set[str]] = {}
        for key in read_keys:
            self._scopes.setdefault(_digest(key), set()).add(_READ)
        for key in admin_keys:
            self._scopes.setdefault(_digest(key), set()).update({_READ, _ADMIN})

    def channels(self, headers: Headers) -> frozenset[str]:
        """The channels the request's key may publish; 401 when the key is missing or unknown, 403 for a reader."""
        digest = _digest(_key(headers))
        channels = self._by_digest.get(digest)
        if channels is not None:
            return channels
        if digest in self._scopes:
            raise HttpError(
                403,
                "forbidden_scope",
                "this API key may read customer data, not publish events: publish with your channel's key",
            )
        raise _unauthenticated(f"unknown API key: {_HOW}")

    def require_known(self, headers: Headers) -> None:
        """Pass for any configured key (data that is no one's personal data, e.g. a store's stock); 401 otherwise."""
        digest = _digest(_key(headers))
        if digest not in self._by_digest and digest not in self._scopes:
            raise _unauthenticated(f"unknown API key: {_HOW}")

    def require_read(self, headers: Headers) -> None:
        """Pass for a read or admin key; 403 for a channel key (it only writes), 401 for a missing/unknown key."""
        self._require(headers, _READ, "reading customer data needs a read key (OMNICHANNEL_READ_KEYS)")

    def require_admin(self, headers: Headers) -> None:
        """Pass for an admin key; 403 for any other known key, 401 for a missing or unknown key."""
        self._require(headers, _ADMIN, "this operation needs an admin key (OMNICHANNEL_ADMIN_KEYS)")

    def _require(self, headers: Headers, scope: str, need: str) -> None:
        digest = _digest(_key(headers))
        if scope in self._scopes.get(digest, ()):
            return
        if digest in self._by_digest or digest in self._scopes:
            raise HttpError(403, "forbidden_scope", f"{need}; a channel key only publishes its channel's events")
        raise _unauthenticated(f"unknown API key: {need}")


def _key(headers: Headers) -> str:
    key = headers.get("x-api-key")
    if key is None:
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            key = credentials.strip()
    if not key:
        raise _unauthenticated(f"missing API key: {_HOW}")
    return key


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
