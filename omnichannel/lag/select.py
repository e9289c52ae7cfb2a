"""Which consumer groups the monitor watches: regular-expression allow and deny lists (pure, no I/O).

kafka-lag-exporter calls these ``group-allow-list`` / ``group-deny-list``; the semantics are the same: a group
is watched when its whole name matches at least one allow pattern (every group when the list is empty) and
no deny pattern. Patterns use Python's :mod:`re` syntax and must match the *whole* name (``orders-.*``, not
``orders-``), as Java's ``String.matches`` does in kafka-lag-exporter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from omnichannel.lag.errors import LagConfigError

__all__ = ["GroupSelector"]


@dataclass(frozen=True)
class GroupSelector:
    """Allow and deny patterns over group names; the default selects every group."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    _allow: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _deny: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", _compile(self.allow, "--group-allow / OMNICHANNEL_LAG_GROUP_ALLOW"))
        object.__setattr__(self, "_deny", _compile(self.deny, "--group-deny / OMNICHANNEL_LAG_GROUP_DENY"))

    def __call__(self, group: str) -> bool:
        """True when ``group`` is watched."""
        if self._allow and not any(p.fullmatch(group) for p in self._allow):
            return False
        return not any(p.fullmatch(group) for p in self._deny)

    def select(self, groups: Iterable[str]) -> list[str]:
        """The watched names among ``groups``, in their order."""
        return [g for g in groups if self(g)]

    @property
    def selects_all(self) -> bool:
        """True when no pattern is set (every group is watched)."""
        return not self.allow and not self.deny


def _compile(patterns: tuple[str, ...], where: str) -> tuple[re.Pattern[str], ...]:
    compiled: list[re.Pattern[str]] = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise LagConfigError(
                f"{pattern!r} is not a regular expression ({exc}); {where} takes patterns such as 'omnichannel-.*'"
            ) from exc
    return tuple(compiled)
