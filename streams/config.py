"""Stream-processor settings: typed, frozen, read once from the environment at the worker's entry point."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from omnichannel.errors import ConfigError
from streams.domain.cart import MergeMode
from streams.domain.customer import CustomerLimits
from streams.domain.identity import IdentityRules

__all__ = ["ProcessorConfig"]


@dataclass(frozen=True)
class ProcessorConfig:
    """How the processors merge and bound state, and how they batch.

    - ``merge_mode``: how an anonymous cart joins the customer's on login (``OMNICHANNEL_CART_MERGE``:
      max (default), sum, keep_customer, replace).
    - ``cart_idle_ms``: a cart untouched this long expires (``OMNICHANNEL_CART_IDLE_MINUTES``, default 7 days);
      measured in event time, so a replay decides the same way.
    - ``batch_max`` / ``batch_within_s``: records taken per batch, and the longest wait to fill one.
    """

    merge_mode: MergeMode = MergeMode.MAX
    cart_idle_ms: int = 7 * 24 * 3600 * 1000
    identity_rules: IdentityRules = field(default_factory=IdentityRules)
    customer_limits: CustomerLimits = field(default_factory=CustomerLimits)
    batch_max: int = 500
    batch_within_s: float = 0.02

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProcessorConfig:
        env = os.environ if environ is None else environ
        mode_text = env.get("OMNICHANNEL_CART_MERGE", MergeMode.MAX.value).strip().lower()
        try:
            mode = MergeMode(mode_text)
        except ValueError:
            choices = ", ".join(m.value for m in MergeMode)
            raise ConfigError(f"OMNICHANNEL_CART_MERGE={mode_text!r} is not one of {choices}") from None
        idle = env.get("OMNICHANNEL_CART_IDLE_MINUTES", "").strip()
        try:
            idle_ms = int(float(idle) * 60_000) if idle else cls.cart_idle_ms
        except ValueError:
            raise ConfigError(f"OMNICHANNEL_CART_IDLE_MINUTES={idle!r} must be a number of minutes") from None
        if idle_ms <= 0:
            raise ConfigError("OMNICHANNEL_CART_IDLE_MINUTES must be positive")
        batch = env.get("OMNICHANNEL_BATCH_MAX", "").strip()
        if batch and (not batch.isdigit() or int(batch) < 1):
            raise ConfigError(f"OMNICHANNEL_BATCH_MAX={batch!r} must be a positive whole number, e.g. 500")
        return cls(merge_mode=mode, cart_idle_ms=idle_ms, batch_max=int(batch) if batch else cls.batch_max)
