"""What a resolved stack is: one :class:`ServiceInfo` per service, saved as JSON for other commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["NodeInfo", "Progress", "ResolvedBy", "ServiceInfo", "StackInfo", "quiet"]

ResolvedBy = Literal["env", "stack-file", "docker", "local"]
#: Long steps (downloads, starts) report human-readable progress through this callback.
Progress = Callable[[str], None]


def quiet(_message: str) -> None:
    """A :data:`Progress` that says nothing."""


@dataclass(frozen=True)
class NodeInfo:
    """One process of a clustered service (a Kafka broker of three, a Redis Cluster master or replica)."""

    address: str
    pid: int | None
    log_file: str
    role: str = ""  # Redis Cluster: "master" or "replica" at start-up (a failover swaps them)


@dataclass(frozen=True)
class ServiceInfo:
    """One service of the stack and how it was found.

    A clustered service (``stack up --brokers 3``, ``--redis-cluster``) has one :class:`NodeInfo` per process
    in ``nodes`` and no ``pid`` of its own: stopping it stops every node.
    """

    name: str
    address: str
    resolved_by: ResolvedBy
    version: str
    pid: int | None = None
    container_id: str | None = None
    log_file: str | None = None
    nodes: tuple[NodeInfo, ...] = ()

    @property
    def pids(self) -> tuple[int, ...]:
        """Every process of the service this project started (one, or one per node)."""
        own = (self.pid,) if self.pid is not None else ()
        return own + tuple(n.pid for n in self.nodes if n.pid is not None)

    def describe(self) -> str:
        """One line for test headers and ``stack status``."""
        where = f" pid={self.pid}" if self.pid else f" container={self.container_id[:12]}" if self.container_id else ""
        if self.nodes:
            where = f" {len(self.nodes)} nodes, pids={','.join(str(p) for p in self.pids)}"
        log = f" log={self.log_file}" if self.log_file else ""
        return f"{self.name}: {self.address} (version {self.version}, resolved by {self.resolved_by}{where}{log})"

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ServiceInfo:
        """The inverse of ``asdict`` (nodes come back as :class:`NodeInfo`)."""
        fields = dict(raw)
        nodes = fields.pop("nodes", ())
        return cls(**fields, nodes=tuple(NodeInfo(**n) for n in nodes))


@dataclass(frozen=True)
class StackInfo:
    """Kafka, Schema Registry and Redis as resolved together."""

    kafka: ServiceInfo
    registry: ServiceInfo
    redis: ServiceInfo

    @property
    def services(self) -> tuple[ServiceInfo, ServiceInfo, ServiceInfo]:
        return (self.kafka, self.registry, self.redis)

    def save(self, path: Path) -> None:
        """Write the stack file other commands read (atomically: write then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({s.name: asdict(s) for s in self.services}, indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> StackInfo | None:
        """Read a stack file; ``None`` when there is none or it is unreadable."""
        try:
            raw = json.loads(path.read_text())
            return cls(**{name: ServiceInfo.from_json(raw[name]) for name in ("kafka", "registry", "redis")})
        except (OSError, ValueError, KeyError, TypeError):
            return None
