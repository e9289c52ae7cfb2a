"""Development mode cannot leak: the demo page and its keys exist only with OMNICHANNEL_DEV=1, which says so
loudly at start; scopes hold for the development keys too."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.server import create_server
from connectors.config import CollectorConfig
from connectors.publisher import Publisher, publisher_for
from omnichannel.settings import Settings


@pytest.fixture
def publisher(registered: Settings) -> Iterator[Publisher]:
    with publisher_for(registered, delivery_timeout_s=5) as pub:
        yield pub


def test_without_development_mode_there_is_no_demo_page_nor_its_keys(settings: Settings, publisher: Publisher) -> None:
    config = CollectorConfig.from_env(
        {"OMNICHANNEL_CHANNEL_KEYS": "mobile_app=mobile-key-0123456789", "OMNICHANNEL_HASH_KEY": "h" * 32}
    )
    with TestClient(create_server(settings, config, publisher)) as client:
        assert client.get("/demo/config.json").status_code == 404
        assert client.get("/demo/").status_code == 404
        assert client.get("/v1/customers/C-1", headers={"X-Api-Key": "dev-read"}).status_code == 401
        assert client.get("/v1/typology", headers={"X-Api-Key": "dev-admin"}).status_code == 401


def test_development_mode_warns_at_start_and_serves_the_demo_with_a_read_key(
    settings: Settings, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    config = CollectorConfig.from_env({"OMNICHANNEL_DEV": "1"})
    with caplog.at_level(logging.WARNING), TestClient(create_server(settings, config, publisher)) as client:
        assert any("DEVELOPMENT MODE" in r.getMessage() for r in caplog.records), "dev mode must say so at start"
        demo = client.get("/demo/config.json").json()
        assert demo == {"keys": {"mobile_app": "dev-mobile_app", "tablet": "dev-tablet"}, "read_key": "dev-read"}
        assert client.get("/v1/customers/C-1", headers={"X-Api-Key": "dev-mobile_app"}).status_code == 403
        assert client.get("/v1/customers/C-1", headers={"X-Api-Key": "dev-read"}).status_code == 404
