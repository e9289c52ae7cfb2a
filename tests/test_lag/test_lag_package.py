"""The package's public surface, its import hygiene, its settings and the processors' metric contract."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry

import omnichannel.lag
from omnichannel.errors import OmnichannelError, ServiceUnavailableError
from omnichannel.lag.config import LagConfig
from omnichannel.lag.errors import BrokerUnavailableError, LagConfigError, LagError
from omnichannel.lag.processor_metrics import (
    END_TO_END_LATENCY,
    LAST_PROCESSED,
    LAST_PROCESSED_RECORD,
    ProcessorMetrics,
    processor_metrics,
)


def test_lag_public_surface_is_pinned() -> None:
    assert omnichannel.lag.__all__ == sorted(omnichannel.lag.__all__)
    assert set(omnichannel.lag.__all__) == {
        "BrokerUnavailableError", "Evaluation", "GroupLag", "GroupState", "GroupStatus", "GroupTransition",
        "KafkaLagSource", "LagConfig", "LagConfigError", "LagError", "LagMonitor", "LagReport", "LagSource",
        "LogNotifier", "Notifier", "PartitionLag", "PartitionStatus", "Sample", "TopicLag", "WebhookNotifier",
        "evaluate_group", "evaluate_partition", "report_to_json",
    }  # fmt: skip
    for name in omnichannel.lag.__all__:
        assert getattr(omnichannel.lag, name) is not None


def test_lag_import_starts_nothing_and_leaves_the_web_stack_alone() -> None:
    code = (
        "import sys, threading, omnichannel.lag, omnichannel.lag.processor_metrics;"
        "assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules, 'web stack imported';"
        "assert threading.active_count() == 1, 'a thread was started';"
        "from prometheus_client import REGISTRY;"
        "assert not [n for n in REGISTRY._names_to_collectors if n.startswith('omnichannel_')], 'metrics registered'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_lag_errors_derive_from_the_project_root() -> None:
    assert issubclass(LagError, OmnichannelError)
    assert issubclass(BrokerUnavailableError, LagError) and issubclass(BrokerUnavailableError, ServiceUnavailableError)
    assert issubclass(LagConfigError, LagError)


def test_lag_config_reads_the_environment_and_rejects_bad_values() -> None:
    config = LagConfig.from_env(
        {
            "OMNICHANNEL_LAG_INTERVAL": "5",
            "OMNICHANNEL_LAG_WINDOW": "60",
            "OMNICHANNEL_LAG_GROUPS": "a, b,,",
            "OMNICHANNEL_LAG_WEBHOOK_URL": "http://hooks.local/lag",
            "OMNICHANNEL_LAG_HOST": "0.0.0.0",
            "OMNICHANNEL_LAG_PORT": "9000",
        }
    )
    assert (config.interval_seconds, config.window_seconds, config.groups) == (5.0, 60.0, ("a", "b"))
    assert (config.webhook_url, config.host, config.port) == ("http://hooks.local/lag", "0.0.0.0", 9000)
    assert LagConfig.from_env({}) == LagConfig()
    with pytest.raises(LagConfigError, match="OMNICHANNEL_LAG_INTERVAL"):
        LagConfig.from_env({"OMNICHANNEL_LAG_INTERVAL": "soon"})
    with pytest.raises(LagConfigError, match="at least two readings"):
        LagConfig.from_env({"OMNICHANNEL_LAG_INTERVAL": "30", "OMNICHANNEL_LAG_WINDOW": "45"})
    assert config.override(groups=None, port=9100).port == 9100


def test_lag_processor_metric_contract() -> None:
    registry = CollectorRegistry()
    metrics = ProcessorMetrics(registry)
    metrics.record_applied("workers", "events.by_customer", 3, record_timestamp=1000.0, applied_at=1000.25)
    metrics.record_applied("workers", "events.by_customer", 3, record_timestamp=1001.0, applied_at=1000.5)
    labels = {"group": "workers", "topic": "events.by_customer"}
    assert registry.get_sample_value(f"{END_TO_END_LATENCY}_count", labels) == 2
    assert registry.get_sample_value(f"{END_TO_END_LATENCY}_sum", labels) == pytest.approx(0.25)  # clamped at 0
    assert registry.get_sample_value(f"{END_TO_END_LATENCY}_bucket", {**labels, "le": "0.25"}) == 2
    per_partition = {**labels, "partition": "3"}
    assert registry.get_sample_value(LAST_PROCESSED, per_partition) == 1000.5
    assert registry.get_sample_value(LAST_PROCESSED_RECORD, per_partition) == 1001.0
    assert processor_metrics() is processor_metrics()


def test_a_batch_of_applied_records_exports_what_one_call_per_record_does() -> None:
    batch = [("web", 0, 100.0), ("app", 1, 101.0), ("web", 0, 99.5), ("web", 2, 100.25), ("app", 1, 103.0)]
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    per_record = ProcessorMetrics(one_by_one)
    for topic, partition, at in batch:
        per_record.record_applied("workers", topic, partition, record_timestamp=at, applied_at=102.0)
    ProcessorMetrics(batched).records_applied("workers", batch, applied_at=102.0)

    def samples(registry: CollectorRegistry) -> list[tuple[str, list[tuple[str, str]], float]]:
        return sorted(
            (s.name, sorted(s.labels.items()), s.value)
            for family in registry.collect()
            for s in family.samples
            if not s.name.endswith("_created")
        )

    assert samples(batched) == samples(one_by_one)
    web0 = {"group": "workers", "topic": "web", "partition": "0"}
    assert batched.get_sample_value(LAST_PROCESSED_RECORD, web0) == 99.5  # the partition's last record, not its max
    assert batched.get_sample_value(f"{END_TO_END_LATENCY}_count", {"group": "workers", "topic": "app"}) == 2
