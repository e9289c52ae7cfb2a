"""HMAC-SHA256 webhook signatures with a timestamp, as signed-webhook providers do it.

The provider sends two headers: a timestamp (epoch seconds) and ``v1=<hex>``, where ``<hex>`` is
``HMAC-SHA256(secret, "<timestamp>." + raw body)``. Several ``v1=`` values may be sent, comma-separated,
while the provider rotates its secret; one match is enough. Signing the timestamp with the body and
refusing timestamps older (or newer) than the tolerance stops an intercepted request being replayed.
"""

from __future__ import annotations

import hashlib
import hmac

from connectors.errors import SignatureError

__all__ = ["sign", "verify"]

_SCHEME = "v1="


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (what a provider computes)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return _SCHEME + digest


def verify(
    secret: str,
    *,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now_s: float,
    tolerance_s: int,
    header_names: tuple[str, str] = ("signature", "timestamp"),
) -> int:
    """Check a webhook's signature and freshness; return its timestamp (epoch seconds).

    Raises :class:`SignatureError` saying which header is missing or malformed, that the timestamp is
    outside ``tolerance_s``, or that no signature matches (wrong secret, or a body altered in transit).
    """
    signature_header, timestamp_header = header_names
    if not timestamp:
        raise SignatureError(f"the {timestamp_header} header is missing")
    if not signature:
        raise SignatureError(f"the {signature_header} header is missing")
    try:
        sent_at = int(timestamp.strip())
    except ValueError:
        raise SignatureError(f"the {timestamp_header} header must be epoch seconds, got {timestamp!r}") from None
    if abs(now_s - sent_at) > tolerance_s:
        raise SignatureError(
            f"the {timestamp_header} {sent_at} is more than {tolerance_s} s away from the collector's clock "
            f"({int(now_s)}): a replayed request, or a clock that needs syncing"
        )
    candidates = [part.strip() for part in signature.split(",") if part.strip().startswith(_SCHEME)]
    if not candidates:
        raise SignatureError(f"the {signature_header} header must hold v1=<hex HMAC-SHA256>, got {signature[:80]!r}")
    expected = sign(secret, sent_at, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError(
            f"the {signature_header} does not match the body: check the webhook secret configured for this channel"
        )
    return sent_at
