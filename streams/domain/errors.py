"""Errors raised by the pure domain rules of the stream processors.

They derive from the project's root :class:`~omnichannel.errors.OmnichannelError`. A stream processor
catches :class:`DomainError` around ``apply_*`` calls and sends the offending event to the dead-letter
topic: a rule violation is a property of the event, so retrying it would fail the same way.
"""

from __future__ import annotations

from omnichannel.errors import OmnichannelError

__all__ = ["CartRuleError", "DomainError", "IdentityRuleError"]


class DomainError(OmnichannelError):
    """An event or a configuration breaks a business rule of the domain."""


class CartRuleError(DomainError):
    """A cart event breaks a cart rule; the message names the field and how to fix the event."""


class IdentityRuleError(DomainError):
    """Identity-resolution rules are misconfigured; the message names the setting and a valid value."""
