"""The lag monitor's settings, read from the environment once by the CLI and passed down.

=================================  =========  ==========================================================
Variable                           Default    Meaning
=================================  =========  ==========================================================
``OMNICHANNEL_LAG_INTERVAL``       ``10``     seconds between two readings of the broker
``OMNICHANNEL_LAG_WINDOW``         ``120``    status window in seconds (at least two intervals)
``OMNICHANNEL_LAG_GROUPS``         (all)      comma-separated consumer groups to watch (exact names)
``OMNICHANNEL_LAG_GROUP_ALLOW``    (all)      comma-separated regular expressions: watch only matching groups
``OMNICHANNEL_LAG_GROUP_DENY``     (none)     comma-separated regular expressions: never watch these groups
``OMNICHANNEL_LAG_CLUSTER_NAME``   ``local``  the ``cluster_name`` label and the Burrow API's cluster name
``OMNICHANNEL_LAG_WEBHOOK_URL``    (none)     POST group transitions here; without it they are logged
``OMNICHANNEL_LAG_HOST``           127.0.0.1  address ``lag serve`` binds (``0.0.0.0`` in a container)
``OMNICHANNEL_LAG_PORT``           ``8090``   port of ``lag serve``
``OMNICHANNEL_LAG_TIMEOUT``        ``10``     seconds an admin request may take before Kafka counts as down
=================================  =========  ==========================================================

The Kafka address itself is ``KAFKA_BOOTSTRAP_SERVERS``, as for every other command.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from omnichannel.lag.errors import LagConfigError
from omnichannel.lag.select import GroupSelector

__all__ = ["LagConfig"]


@dataclass(frozen=True)
class LagConfig:
    """Typed, frozen settings of ``omnichannel lag`` and ``omnichannel lag serve``."""

    interval_seconds: float = 10.0
    window_seconds: float = 120.0
    history_seconds: float = 3600.0
    groups: tuple[str, ...] | None = None
    webhook_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8090
    timeout_seconds: float = 10.0
    cluster_name: str = "local"
    group_allow: tuple[str, ...] = ()
    group_deny: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        GroupSelector(self.group_allow, self.group_deny)  # a bad pattern fails here, naming the setting
        # The name is a Prometheus label value and a path segment of the Burrow API (/v3/kafka/{cluster}).
        if not self.cluster_name or "/" in self.cluster_name:
            raise LagConfigError(
                f"cluster name {self.cluster_name!r} must be non-empty and contain no '/', "
                "e.g. OMNICHANNEL_LAG_CLUSTER_NAME=prod-eu"
            )
        if self.interval_seconds <= 0 or self.timeout_seconds <= 0:
            raise LagConfigError("the lag interval and timeout must be positive, e.g. OMNICHANNEL_LAG_INTERVAL=10")
        # WARN compares samples inside the window: fewer than two per window could never raise it.
        if self.window_seconds < 2 * self.interval_seconds:
            raise LagConfigError(
                f"the lag window ({self.window_seconds:g}s) must hold at least two readings, i.e. be at least "
                f"twice the interval ({self.interval_seconds:g}s), e.g. OMNICHANNEL_LAG_WINDOW=120 with "
                "OMNICHANNEL_LAG_INTERVAL=10"
            )
        if not 0 < self.port < 65536:
            raise LagConfigError(f"port {self.port} is not a TCP port, e.g. OMNICHANNEL_LAG_PORT=8090")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LagConfig:
        """Build the settings from ``OMNICHANNEL_LAG_*`` variables (table in the module docstring)."""
        env = os.environ if environ is None else environ
        d = cls()
        groups = [g.strip() for g in env.get("OMNICHANNEL_LAG_GROUPS", "").split(",") if g.strip()]
        return cls(
            interval_seconds=_number(env, "OMNICHANNEL_LAG_INTERVAL", d.interval_seconds),
            window_seconds=_number(env, "OMNICHANNEL_LAG_WINDOW", d.window_seconds),
            groups=tuple(groups) or None,
            webhook_url=env.get("OMNICHANNEL_LAG_WEBHOOK_URL", "").strip() or None,
            host=env.get("OMNICHANNEL_LAG_HOST", "").strip() or d.host,
            port=int(_number(env, "OMNICHANNEL_LAG_PORT", d.port)),
            timeout_seconds=_number(env, "OMNICHANNEL_LAG_TIMEOUT", d.timeout_seconds),
            cluster_name=env.get("OMNICHANNEL_LAG_CLUSTER_NAME", "").strip() or d.cluster_name,
            group_allow=_patterns(env, "OMNICHANNEL_LAG_GROUP_ALLOW"),
            group_deny=_patterns(env, "OMNICHANNEL_LAG_GROUP_DENY"),
        )

    @property
    def selector(self) -> GroupSelector:
        """The allow/deny patterns as a group predicate."""
        return GroupSelector(self.group_allow, self.group_deny)

    def override(self, **changes: object) -> LagConfig:
        """A copy with the command-line options that were given (``None`` values are ignored)."""
        given = {k: v for k, v in changes.items() if v is not None and v != ()}
        return replace(self, **given)  # type: ignore[arg-type]


def _patterns(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    # Commas separate patterns; a pattern that needs a comma (``a{1,3}``) goes on the command line instead.
    return tuple(p.strip() for p in env.get(name, "").split(",") if p.strip())


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise LagConfigError(f"{name}={raw!r} must be a positive number of seconds/port, e.g. {name}={default:g}")
    return value
