"""Redis key layout. Everything about one customer (or anonymous profile) shares one hash tag; the identity index
has a hash tag of its own (on one Redis; see the end for a Redis Cluster).

| key | type | holds |
|---|---|---|
| ``<ns>cart:{<key>}`` | string (JSON ``omnichannel.output.Cart``) | the cart of a profile key |
| ``<ns>customer:{<key>}`` | string (JSON ``omnichannel.output.CustomerState``) | the customer record |
| ``<ns>meta:{<key>}`` | string (JSON) | ``merged_into`` once absorbed |
| ``<ns>cart-updates:{<key>}`` | pub/sub channel | each cart change, for live readers (SSE) |
| ``<ns>idg:{idg}:owner:<type>:<value>`` | string | profile key owning an identifier |
| ``<ns>idg:{idg}:members:<profile>`` | set | identifiers (``type:value``) of a profile |
| ``<ns>idg:{idg}:cl:<type>:<value>`` | string | the cluster (connected identifiers) an identifier is in |
| ``<ns>idg:{idg}:clm:<cluster>`` | set | the cluster's identifiers |
| ``<ns>idg:{idg}:clog:<cluster>`` | hash | item id -> canonical JSON (events, due checks); ``~last``: last folded |
| ``<ns>idg:{idg}:clp:<cluster>`` | set | the profile keys last derived from the cluster |
| ``<ns>idg:{idg}:clv:<cluster>`` | string | random token written by each commit: a cached copy is current iff equal |
| ``<ns>idg:{idg}:erased`` | set | SHA-256 digests of erased identifiers: a replay cannot bring them back |
| ``<ns>erasure:<request id>`` | string (JSON, 30 days) | status of an erasure request, no personal data |
| ``<ns>idg:{idg}:unlinked`` | set | identifiers an operator unlinked (``omnichannel identities unlink``) |
| ``<ns>jrn:{<ns>jrn}:due`` | sorted set | scheduled journey checks: JSON ``[profile, kind, episode]`` -> due ms |
| ``<ns>attr:{<ns>attr}:exposed:<action>`` | set | customer ids exposed on an action channel |
| ``<ns>attr:{<ns>attr}:converted:<action>:<response>`` | set | customer ids converting there, credited to there |
| ``<ns>attr:{<ns>attr}:responded:<response>`` | set | customer ids who converted on a response channel |
| ``<ns>attr:{<ns>attr}:dropped:<reason>`` | set | event ids of exposures/conversions given up |
| ``<ns>attr:{<ns>attr}:meta`` | hash | the worker's attribution ``model`` and ``window_ms`` |
| ``<ns>typology:{<ns>typ}:<class>`` | set | customer ids per channel typology (``mono_channel``, ...) |
| ``<ns>segment:{<ns>seg}:<segment>`` | set | customer ids per channel-mix segment (``fully_connected``, ...) |
| ``<ns>stock:{<store>}`` | hash | product id -> JSON ``{available, sequence, at_ms}`` in one store |

The identity index and the cluster logs live in one hash slot (``{idg}``) so a batch's commit is one
MULTI/EXEC. That commit also writes carts, records and meta, so on a Redis Cluster (``Keys(single_slot=True)``)
every key gets the ``{idg}`` tag before its own (``cart:{idg}:customer:C-1``) and one master carries the whole
state: failover, not scale (measured in docs/reliability.md; sharding would need a commit per cluster).
The journey schedule is one sorted set per namespace (one hash tag) so a claim is one atomic script; the
matrix, typology and segment sets are read together, hence one tag each; stock has one hash per store.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SINGLE_SLOT_TAG", "Keys"]

#: The hash tag of the identity graph, and of every key on Redis Cluster (:attr:`Keys.single_slot`).
SINGLE_SLOT_TAG = "{idg}"


@dataclass(frozen=True)
class Keys:
    """Key builders for one namespace (``Settings.namespace``)."""

    namespace: str = ""
    #: On Redis Cluster every key carries the ``{idg}`` tag (``cart:{idg}:<key>``, ``stock:{idg}:<store>``...):
    #: the merge core writes carts and records in the same MULTI/EXEC as the identity index, and the worker's
    #: scripts and MGETs need one node. So the whole state lives in one slot: see docs/reliability.md.
    single_slot: bool = False

    @property
    def _ns(self) -> str:
        return f"{self.namespace}:" if self.namespace else ""

    def _tagged(self, tag: str) -> str:
        """``{tag}``, or ``{idg}:tag`` in single-slot mode (the same key names, one hash slot)."""
        return f"{SINGLE_SLOT_TAG}:{tag}" if self.single_slot else f"{{{tag}}}"

    def cart(self, key: str) -> str:
        return f"{self._ns}cart:{self._tagged(key)}"

    def customer(self, key: str) -> str:
        return f"{self._ns}customer:{self._tagged(key)}"

    def meta(self, key: str) -> str:
        return f"{self._ns}meta:{self._tagged(key)}"

    def seen(self, key: str) -> str:
        return f"{self._ns}seen:{self._tagged(key)}"

    def cart_updates(self, key: str) -> str:
        return f"{self._ns}cart-updates:{{{key}}}"

    def owner(self, identifier: str) -> str:
        """``identifier`` is ``<type>:<value>``."""
        return f"{self._ns}idg:{{idg}}:owner:{identifier}"

    def members(self, profile_key: str) -> str:
        return f"{self._ns}idg:{{idg}}:members:{profile_key}"

    def cluster_of(self, identifier: str) -> str:
        """The cluster id of an identifier (``<type>:<value>``)."""
        return f"{self._ns}idg:{{idg}}:cl:{identifier}"

    def cluster_members(self, cid: str) -> str:
        return f"{self._ns}idg:{{idg}}:clm:{cid}"

    def cluster_log(self, cid: str) -> str:
        return f"{self._ns}idg:{{idg}}:clog:{cid}"

    def cluster_profiles(self, cid: str) -> str:
        return f"{self._ns}idg:{{idg}}:clp:{cid}"

    def cluster_version(self, cid: str) -> str:
        return f"{self._ns}idg:{{idg}}:clv:{cid}"

    def erased(self) -> str:
        """The erasure deny-list: SHA-256 digests of erased identifiers."""
        return f"{self._ns}idg:{{idg}}:erased"

    def erasure(self, request_id: str) -> str:
        """Status of one erasure request (JSON, no personal data)."""
        where = f"{SINGLE_SLOT_TAG}:" if self.single_slot else ""
        return f"{self._ns}erasure:{where}{request_id}"

    def unlinked(self) -> str:
        return f"{self._ns}idg:{{idg}}:unlinked"

    def due(self) -> str:
        """The journey schedule (see :mod:`streams.journeys.store`)."""
        return f"{self._ns}jrn:{self._tagged(f'{self._ns}jrn')}:due"

    def exposed(self, action_channel: str) -> str:
        return f"{self._ns}attr:{self._tagged(f'{self._ns}attr')}:exposed:{action_channel}"

    def converted(self, action_channel: str, response_channel: str) -> str:
        return f"{self._ns}attr:{self._tagged(f'{self._ns}attr')}:converted:{action_channel}:{response_channel}"

    def responded(self, response_channel: str) -> str:
        return f"{self._ns}attr:{self._tagged(f'{self._ns}attr')}:responded:{response_channel}"

    def dropped(self, reason: str) -> str:
        return f"{self._ns}attr:{self._tagged(f'{self._ns}attr')}:dropped:{reason}"

    def attribution_meta(self) -> str:
        return f"{self._ns}attr:{self._tagged(f'{self._ns}attr')}:meta"

    def typology(self, typology: str) -> str:
        return f"{self._ns}typology:{self._tagged(f'{self._ns}typ')}:{typology}"

    def segment(self, segment: str) -> str:
        return f"{self._ns}segment:{self._tagged(f'{self._ns}seg')}:{segment}"

    def stock(self, store_id: str) -> str:
        return f"{self._ns}stock:{self._tagged(store_id)}"

    def derived_patterns(self) -> tuple[str, ...]:
        """SCAN patterns of every key the backbone derives from Kafka (what ``omnichannel rebuild`` wipes).

        Only this namespace's prefixes, so a shared Redis keeps everyone else's keys. The erasure deny-list
        (:meth:`erased`) matches ``idg:{idg}:*`` but is never wiped: see :mod:`streams.rebuild`.
        """
        ns = self._escaped_ns  # hash tags included, so another application's ``customer:123`` never matches
        per_key = "{idg}:*" if self.single_slot else "{*}"  # see _tagged: one slot on Redis Cluster
        tagged = tuple(f"{ns}{kind}:{per_key}" for kind in ("cart", "customer", "meta", "seen", "stock"))
        shared = tuple(
            f"{ns}{kind}:{{idg}}:{ns}{tag}:*" if self.single_slot else f"{ns}{kind}:{{{ns}{tag}}}:*"
            for kind, tag in (("jrn", "jrn"), ("attr", "attr"), ("typology", "typ"), ("segment", "seg"))
        )
        return (*tagged, *shared, f"{ns}idg:{{idg}}:*", f"{ns}erasure:*")

    @property
    def _escaped_ns(self) -> str:
        # A namespace is a plain word, but SCAN patterns give * ? [ ] and the backslash a meaning: escape them.
        return "".join(f"\\{c}" if c in "*?[]\\" else c for c in self._ns)
