"""Identifier hashes: the shape the contract requires, and the keyed hash the backbone computes itself.

The contract's ``email_hash`` and ``phone_hash`` are 64 lowercase hex characters (a SHA-256 or HMAC-SHA-256
digest); anything else, a clear address above all, is refused. When the backbone receives a clear identifier
(an e-mail in a provider's webhook, a caller's or an SMS number), it keeps only
``HMAC-SHA-256(OMNICHANNEL_HASH_KEY, normalised identifier)``: without the deployment's key, a leaked topic
or Redis dump cannot be reversed by hashing a list of known e-mails or phone numbers.

Normalisation: an e-mail address is trimmed and lower-cased; a phone number is E.164 (``+447700900123``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

__all__ = ["DEV_HASH_KEY", "HASHED_IDENTITIES", "is_identifier_hash", "keyed_email_hash", "keyed_phone_hash"]

#: The identities members that must carry a hash, never the clear value.
HASHED_IDENTITIES: Final = ("email_hash", "phone_hash")
#: The fixed key of development mode (``OMNICHANNEL_DEV=1`` without ``OMNICHANNEL_HASH_KEY``): public, so
#: hashes made with it protect nothing.
DEV_HASH_KEY: Final = b"omnichannel-development-hash-key"
_HEX64: Final = re.compile(r"[0-9a-f]{64}")


def is_identifier_hash(value: str) -> bool:
    """True when ``value`` has the contract's hash shape: exactly 64 lowercase hex characters."""
    return _HEX64.fullmatch(value) is not None


def keyed_email_hash(key: bytes, address: str) -> str:
    """HMAC-SHA-256 (hex) of an e-mail address, trimmed and lower-cased, under the deployment's key."""
    return _keyed(key, address.strip().lower())


def keyed_phone_hash(key: bytes, e164: str) -> str:
    """HMAC-SHA-256 (hex) of a phone number in E.164 form under the deployment's key."""
    return _keyed(key, e164.strip())


def _keyed(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
