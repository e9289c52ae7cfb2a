"""Ops stream-lag monitor: how far each consumer group is behind, in offsets and seconds, with a status.

Figures come from the broker (never from a processor's bookkeeping); statuses follow Burrow's rules over a
sliding window (:mod:`omnichannel.lag.status`). Outputs: Prometheus ``/metrics``, ``GET /v1/ops/lag``, the
``omnichannel lag`` table, a live page at ``/ops/lag`` and a notifier hook. See docs/lag.md.

Importing this package starts nothing and touches no network; the web layer (FastAPI) is imported only by
:mod:`omnichannel.lag.web`.
"""

from omnichannel.lag.broker import KafkaLagSource, LagSource
from omnichannel.lag.config import LagConfig
from omnichannel.lag.errors import BrokerUnavailableError, LagConfigError, LagError
from omnichannel.lag.model import (
    GroupLag,
    GroupState,
    GroupStatus,
    LagReport,
    PartitionLag,
    PartitionStatus,
    TopicLag,
    report_to_json,
)
from omnichannel.lag.monitor import LagMonitor
from omnichannel.lag.notify import GroupTransition, LogNotifier, Notifier, WebhookNotifier
from omnichannel.lag.status import Evaluation, Sample, evaluate_group, evaluate_partition

__all__ = [
    "BrokerUnavailableError",
    "Evaluation",
    "GroupLag",
    "GroupState",
    "GroupStatus",
    "GroupTransition",
    "KafkaLagSource",
    "LagConfig",
    "LagConfigError",
    "LagError",
    "LagMonitor",
    "LagReport",
    "LagSource",
    "LogNotifier",
    "Notifier",
    "PartitionLag",
    "PartitionStatus",
    "Sample",
    "TopicLag",
    "WebhookNotifier",
    "evaluate_group",
    "evaluate_partition",
    "report_to_json",
]
