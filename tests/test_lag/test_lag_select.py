"""Group selection by regular expression and the settings that carry it (pure: no broker)."""

from __future__ import annotations

import pytest

from omnichannel.lag.config import LagConfig
from omnichannel.lag.errors import LagConfigError
from omnichannel.lag.select import GroupSelector


@pytest.mark.parametrize(
    ("allow", "deny", "watched"),
    [
        ((), (), {"orders", "orders-test", "billing"}),
        (("orders.*",), (), {"orders", "orders-test"}),
        (("orders.*",), (".*-test",), {"orders"}),
        ((), ("billing",), {"orders", "orders-test"}),
        (("order",), (), set()),  # whole-name match, as kafka-lag-exporter: "order" is not "orders"
        (("billing", "orders"), (), {"orders", "billing"}),
    ],
)
def test_selector_allows_then_denies_whole_names(
    allow: tuple[str, ...], deny: tuple[str, ...], watched: set[str]
) -> None:
    assert set(GroupSelector(allow, deny).select(["orders", "orders-test", "billing"])) == watched


def test_bad_pattern_names_the_setting() -> None:
    with pytest.raises(LagConfigError, match="OMNICHANNEL_LAG_GROUP_ALLOW"):
        LagConfig.from_env({"OMNICHANNEL_LAG_GROUP_ALLOW": "orders-("})


def test_settings_read_cluster_name_and_patterns() -> None:
    config = LagConfig.from_env(
        {"OMNICHANNEL_LAG_CLUSTER_NAME": "prod-eu", "OMNICHANNEL_LAG_GROUP_DENY": "tmp-.*, .*-test"}
    )
    assert (config.cluster_name, config.group_allow, config.group_deny) == ("prod-eu", (), ("tmp-.*", ".*-test"))
    assert config.selector("orders") and not config.selector("orders-test")
    assert LagConfig.from_env({}).cluster_name == "local"
    with pytest.raises(LagConfigError, match="OMNICHANNEL_LAG_CLUSTER_NAME"):
        LagConfig(cluster_name="a/b")
