"""librdkafka's own log lines go through the project's logging: one clear warning, then the typed error."""

from __future__ import annotations

import logging

import pytest

from omnichannel.errors import ServiceUnavailableError
from omnichannel.kafka_admin import ensure_topics
from omnichannel.stack.processes import free_port
from schemas.topics import catalogue_for


def test_unreachable_kafka_gives_one_warning_and_no_raw_librdkafka_lines(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    caplog.set_level(logging.DEBUG, logger="omnichannel.librdkafka")
    with pytest.raises(ServiceUnavailableError, match=f"Kafka at {dead} did not answer"):
        ensure_topics(dead, catalogue_for(""), 1, timeout=3)
    raw = capfd.readouterr()
    assert "|FAIL|" not in raw.err and "rdkafka" not in raw.err  # nothing printed past logging
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "not reachable" in warnings[0].getMessage()
    assert [r for r in caplog.records if r.levelno == logging.DEBUG]  # the rest are kept for -vv
