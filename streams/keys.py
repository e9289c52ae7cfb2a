"""Redis key layout. Everything about one customer (or anonymous profile) shares one hash tag, so the
atomic per-key update works on Redis Cluster; the identity index has a hash tag of its own.

| key | type | holds |
|---|---|---|
| ``<ns>cart:{<key>}`` | string (JSON ``omnichannel.output.Cart``) | the cart of a profile key |
| ``<ns>customer:{<key>}`` | string (JSON ``omnichannel.output.CustomerState``) | the customer record |
| ``<ns>meta:{<key>}`` | string (JSON) | fence: last applied source offset; ``merged_into`` once absorbed |
| ``<ns>seen:{<key>}`` | sorted set | event ids applied (score = source offset), the last N kept |
| ``<ns>cart-updates:{<key>}`` | pub/sub channel | each cart change, for live readers (SSE) |
| ``<ns>idg:{idg}:owner:<type>:<value>`` | string | profile key owning an identifier |
| ``<ns>idg:{idg}:members:<profile>`` | set | identifiers (``type:value``) of a profile |
| ``<ns>idg:{idg}:decision:<event id>`` | string (JSON, TTL) | what identity resolution decided for an event |
| ``<ns>jrn:{<ns>jrn}:due`` | sorted set | scheduled journey checks: JSON ``[profile, kind, episode]`` -> due ms |
| ``<ns>attr:{<ns>attr}:exposed:<action>`` | set | customer ids exposed on an action channel |
| ``<ns>attr:{<ns>attr}:converted:<action>:<response>`` | set | customer ids converting there, credited to there |
| ``<ns>attr:{<ns>attr}:responded:<response>`` | set | customer ids who converted on a response channel |
| ``<ns>attr:{<ns>attr}:dropped:<reason>`` | set | event ids of exposures/conversions given up |
| ``<ns>attr:{<ns>attr}:meta`` | hash | the worker's attribution ``model`` and ``window_ms`` |
| ``<ns>typology:{<ns>typ}:<class>`` | set | customer ids per channel typology (``mono_channel``, ...) |
| ``<ns>stock:{<store>}`` | hash | product id -> JSON ``{available, sequence, at_ms}`` in one store |

The identity index lives in one hash slot (``{idg}``) so a merge is one MULTI/EXEC; on Redis Cluster that
slot's node carries the whole index (a known limit: shard by identifier once a deployment needs it).
The journey schedule is one sorted set per namespace (one hash tag) so a claim is one atomic script; the
matrix and typology sets are read together, hence one tag each; stock has one hash per store.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True)
class Keys:
    """Key builders for one namespace (``Settings.namespace``)."""

    namespace: str = ""

    @property
    def _ns(self) -> str:
        return f"{self.namespace}:" if self.namespace else ""

    def cart(self, key: str) -> str:
        return f"{self._ns}cart:{{{key}}}"

    def customer(self, key: str) -> str:
        return f"{self._ns}customer:{{{key}}}"

    def meta(self, key: str) -> str:
        return f"{self._ns}meta:{{{key}}}"

    def seen(self, key: str) -> str:
        return f"{self._ns}seen:{{{key}}}"

    def cart_updates(self, key: str) -> str:
        return f"{self._ns}cart-updates:{{{key}}}"

    def owner(self, identifier: str) -> str:
        """``identifier`` is ``<type>:<value>``."""
        return f"{self._ns}idg:{{idg}}:owner:{identifier}"

    def members(self, profile_key: str) -> str:
        return f"{self._ns}idg:{{idg}}:members:{profile_key}"

    def decision(self, event_id: str) -> str:
        return f"{self._ns}idg:{{idg}}:decision:{event_id}"

    def due(self) -> str:
        """The journey schedule (see :mod:`streams.journeys.store`)."""
        return f"{self._ns}jrn:{{{self._ns}jrn}}:due"

    def exposed(self, action_channel: str) -> str:
        return f"{self._ns}attr:{{{self._ns}attr}}:exposed:{action_channel}"

    def converted(self, action_channel: str, response_channel: str) -> str:
        return f"{self._ns}attr:{{{self._ns}attr}}:converted:{action_channel}:{response_channel}"

    def responded(self, response_channel: str) -> str:
        return f"{self._ns}attr:{{{self._ns}attr}}:responded:{response_channel}"

    def dropped(self, reason: str) -> str:
        return f"{self._ns}attr:{{{self._ns}attr}}:dropped:{reason}"

    def attribution_meta(self) -> str:
        return f"{self._ns}attr:{{{self._ns}attr}}:meta"

    def typology(self, typology: str) -> str:
        return f"{self._ns}typology:{{{self._ns}typ}}:{typology}"

    def stock(self, store_id: str) -> str:
        return f"{self._ns}stock:{{{store_id}}}"
