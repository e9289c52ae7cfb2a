"""The Grafana dashboard and the compose services that load it: every query names a metric the backbone exports.

Exported names are read from the code's own metric families (the lag monitor's collector and the processors'
contract), not from a list kept beside this test, so renaming a metric without the dashboard fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from connectors.config import CollectorConfig
from omnichannel.lag.metrics import lag_metric_names
from omnichannel.lag.processor_metrics import ProcessorMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "omnichannel.json"
# Metric names in a PromQL expression: every backbone series starts with one of these.
_METRIC = re.compile(r"\b(?:omnichannel|kafka)_[a-zA-Z0-9_]+")
_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")


def exported_sample_names() -> set[str]:
    """Every sample name the backbone's registries can expose (families plus their type suffixes)."""
    registry = CollectorRegistry()
    ProcessorMetrics(registry)
    families = {f.name for f in registry.collect()} | lag_metric_names()
    return {family + suffix for family in families for suffix in _SUFFIXES}


def _dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    found += [(f"${v['name']}", v["query"]["query"]) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return found


def test_every_dashboard_query_names_an_exported_metric() -> None:
    exported = exported_sample_names()
    queries = _queries(_dashboard())
    assert len(queries) >= 10
    for title, expr in queries:
        names = _METRIC.findall(expr)
        assert names, f"panel {title!r} queries no backbone metric: {expr}"
        unknown = [n for n in names if n not in exported]
        assert not unknown, f"panel {title!r} names metrics nothing exports: {unknown}"


def test_dashboard_covers_status_lag_latency_and_rates() -> None:
    exprs = " ".join(expr for _, expr in _queries(_dashboard()))
    for needed in (
        "kafka_burrow_status",  # group status
        "kafka_consumergroup_group_lag",  # offset lag
        "kafka_consumergroup_group_max_lag_seconds",  # time lag
        "omnichannel_processor_end_to_end_latency_seconds_bucket",  # end-to-end latency
        "deadletter",  # dead letters
        "rate(kafka_partition_latest_offset",  # records published (collector rate)
    ):
        assert needed in exprs, needed
    ids = [p["id"] for p in _dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_compose_provisions_prometheus_and_grafana_with_this_dashboard() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    grafana_mounts = services["grafana"]["volumes"]
    assert "./ops/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana_mounts
    provider = yaml.safe_load((ROOT / "ops/grafana/provisioning/dashboards/omnichannel.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load((ROOT / "ops/grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {d["uid"] for d in datasource["datasources"]}
    assert {p["datasource"]["uid"] for p in _dashboard()["panels"]} <= uids
    scrape = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    jobs = json.dumps(scrape["scrape_configs"])
    assert "lag:8090" in jobs and "9464" in jobs  # the lag monitor and the workers' --metrics-port
    assert "--metrics-port" in services["worker"]["command"] and "9464" in services["worker"]["command"]


def test_compose_keeps_data_restarts_and_checks_health() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services, volumes = compose["services"], compose["volumes"]
    for name, mount in (("kafka", "/var/lib/kafka/data"), ("redis", "/data"), ("grafana", "/var/lib/grafana")):
        named = [v.split(":")[0] for v in services[name]["volumes"] if v.split(":")[1] == mount]
        assert named and named[0] in volumes, f"{name} keeps {mount} in no named volume"
    assert services["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert services["registry"]["environment"]["APICURIO_STORAGE_KIND"] == "kafkasql"  # schemas kept in Kafka
    for name, service in services.items():
        if name == "backbone-init":  # a one-shot job
            continue
        assert service.get("restart") == "unless-stopped", name
        assert "healthcheck" in service, name


def test_env_example_holds_every_key_compose_reads_and_valid_collector_keys() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text()
    read = set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert read <= set(example), read - set(example)
    config = CollectorConfig.from_env(example)  # the API starts on these values instead of exiting
    assert config.keys
