"""Stream-processor settings: typed, frozen, read once from the environment at the worker's entry point."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from omnichannel.errors import ConfigError
from streams.domain.attribution import AttributionModel, AttributionRules
from streams.domain.cart import MergeMode
from streams.domain.customer import CustomerLimits
from streams.domain.errors import DomainError
from streams.domain.fold import FoldRules
from streams.domain.identity import IdentityRules
from streams.domain.journey import JourneyRules
from streams.domain.segments import SegmentRules

__all__ = ["ProcessorConfig"]


@dataclass(frozen=True)
class ProcessorConfig:
    """How the processors merge and bound state, and how they batch.

    - ``merge_mode``: how an anonymous cart joins the customer's on login (``OMNICHANNEL_CART_MERGE``:
      max (default), sum, keep_customer, replace).
    - ``cart_idle_ms``: a cart untouched this long expires (``OMNICHANNEL_CART_IDLE_MINUTES``, default 7 days);
      measured in event time, so a replay decides the same way.
    - ``batch_max`` / ``batch_within_s``: most records per batch, and the longest a batch waits for more while
      records are still queued for it (a batch never waits when nothing more is queued:
      :mod:`streams.faust_batches`).
    - ``journeys``: follow-up quiet periods and channels, attribution window and model (see docs/journeys.md):
      ``OMNICHANNEL_CART_QUIET_SECONDS`` (default 1800), ``OMNICHANNEL_QUOTE_QUIET_SECONDS`` (900),
      ``OMNICHANNEL_FOLLOW_UP_MAX_LATE_MINUTES`` (1440), ``OMNICHANNEL_CART_FOLLOW_UP_CHANNELS`` (email,sms),
      ``OMNICHANNEL_ATTRIBUTION_WINDOW_DAYS`` (30), ``OMNICHANNEL_ATTRIBUTION_MODEL`` (last_touch).
    - ``journey_tick_s``: how often the follow-up timer looks for due checks
      (``OMNICHANNEL_JOURNEY_TICK_SECONDS``, default 1): a follow-up fires at most this late.
    - ``customer_limits.segments``: channel-mix segment thresholds (docs/journeys.md):
      ``OMNICHANNEL_SEGMENT_DIGITAL_CHANNELS`` (web,mobile_app,tablet,email,sms,push),
      ``OMNICHANNEL_SEGMENT_HUMAN_CHANNELS`` (store,call_centre), ``OMNICHANNEL_SEGMENT_CONNECTED_MIN_CHANNELS``
      (2), ``OMNICHANNEL_SEGMENT_HUMAN_SHARE`` (0.5), ``OMNICHANNEL_SEGMENT_MIN_INTERACTIONS`` (3).
    """

    merge_mode: MergeMode = MergeMode.MAX
    cart_idle_ms: int = 7 * 24 * 3600 * 1000
    identity_rules: IdentityRules = field(default_factory=IdentityRules)
    customer_limits: CustomerLimits = field(default_factory=CustomerLimits)
    batch_max: int = 500
    batch_within_s: float = 0.02
    journeys: JourneyRules = field(default_factory=JourneyRules)
    journey_tick_s: float = 1.0

    @property
    def fold_rules(self) -> FoldRules:
        """The rules of the merge core (:func:`streams.domain.fold.fold`)."""
        return FoldRules(self.identity_rules, self.merge_mode, self.cart_idle_ms, self.customer_limits)

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
        return cls(
            merge_mode=mode,
            cart_idle_ms=idle_ms,
            batch_max=int(batch) if batch else cls.batch_max,
            journeys=_journey_rules(env),
            journey_tick_s=_positive(env, "OMNICHANNEL_JOURNEY_TICK_SECONDS", 1.0, "seconds", 1.0),
            customer_limits=CustomerLimits(segments=_segment_rules(env)),
        )


def _positive(env: Mapping[str, str], name: str, default: float, unit: str, scale: float) -> float:
    """``env[name]`` (a positive number of ``unit``) times ``scale``, or ``default`` (already scaled) if unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a positive number of {unit}, e.g. {name}=30")
    return value * scale


def _journey_rules(env: Mapping[str, str]) -> JourneyRules:
    defaults = JourneyRules()
    model_text = env.get("OMNICHANNEL_ATTRIBUTION_MODEL", AttributionModel.LAST_TOUCH.value).strip().lower()
    try:
        model = AttributionModel(model_text)
    except ValueError:
        choices = ", ".join(m.value for m in AttributionModel)
        raise ConfigError(f"OMNICHANNEL_ATTRIBUTION_MODEL={model_text!r} is not one of {choices}") from None
    channels_text = env.get("OMNICHANNEL_CART_FOLLOW_UP_CHANNELS", "").strip()
    channels = tuple(c.strip() for c in channels_text.split(",") if c.strip()) if channels_text else None
    day_ms = 24 * 3600_000.0
    try:
        return JourneyRules(
            cart_quiet_ms=int(
                _positive(env, "OMNICHANNEL_CART_QUIET_SECONDS", defaults.cart_quiet_ms, "seconds", 1000)
            ),
            quote_quiet_ms=int(
                _positive(env, "OMNICHANNEL_QUOTE_QUIET_SECONDS", defaults.quote_quiet_ms, "seconds", 1000)
            ),
            max_late_ms=int(
                _positive(env, "OMNICHANNEL_FOLLOW_UP_MAX_LATE_MINUTES", defaults.max_late_ms, "minutes", 60_000)
            ),
            cart_channels=channels or defaults.cart_channels,
            attribution=AttributionRules(
                window_ms=int(
                    _positive(
                        env, "OMNICHANNEL_ATTRIBUTION_WINDOW_DAYS", defaults.attribution.window_ms, "days", day_ms
                    )
                ),
                model=model,
            ),
        )
    except DomainError as exc:  # the one rule checked by the domain: which channels a cart follow-up may use
        raise ConfigError(
            f"OMNICHANNEL_CART_FOLLOW_UP_CHANNELS={channels_text!r}: {exc}; "
            "write it comma-separated, e.g. OMNICHANNEL_CART_FOLLOW_UP_CHANNELS=email,sms"
        ) from None


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r} must be a positive whole number, e.g. {name}={default}")
    return int(raw)


def _channels(env: Mapping[str, str], name: str, default: frozenset[str]) -> frozenset[str]:
    raw = env.get(name, "").strip()
    return frozenset(c.strip() for c in raw.split(",") if c.strip()) if raw else default


def _segment_rules(env: Mapping[str, str]) -> SegmentRules:
    defaults = SegmentRules()
    share_text = env.get("OMNICHANNEL_SEGMENT_HUMAN_SHARE", "").strip()
    try:
        share = float(share_text) if share_text else defaults.human_share
    except ValueError:
        share = -1.0
    if not 0 <= share < 1:
        raise ConfigError(
            f"OMNICHANNEL_SEGMENT_HUMAN_SHARE={share_text!r} must be a fraction from 0 to below 1, "
            "e.g. OMNICHANNEL_SEGMENT_HUMAN_SHARE=0.5 (more than half of the interactions)"
        )
    try:
        return SegmentRules(
            digital_channels=_channels(env, "OMNICHANNEL_SEGMENT_DIGITAL_CHANNELS", defaults.digital_channels),
            human_channels=_channels(env, "OMNICHANNEL_SEGMENT_HUMAN_CHANNELS", defaults.human_channels),
            connected_min_channels=_whole(
                env, "OMNICHANNEL_SEGMENT_CONNECTED_MIN_CHANNELS", defaults.connected_min_channels
            ),
            human_share=share,
            min_interactions=_whole(env, "OMNICHANNEL_SEGMENT_MIN_INTERACTIONS", defaults.min_interactions),
        )
    except DomainError as exc:  # the channel lists: unknown names, or a channel in both
        raise ConfigError(
            f"OMNICHANNEL_SEGMENT_DIGITAL_CHANNELS / OMNICHANNEL_SEGMENT_HUMAN_CHANNELS: {exc}; write them "
            "comma-separated, e.g. OMNICHANNEL_SEGMENT_HUMAN_CHANNELS=store,call_centre"
        ) from None
