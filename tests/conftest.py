"""Session fixtures: the real Kafka, Schema Registry and Redis, found by the project's own resolver.

The stack is resolved once per session (env addresses -> a running `stack up` -> Docker -> local
processes) and only when a test asks for it, so broker-free tests start nothing. Each test gets unique
topic and group names, so tests never see each other's records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from omnichannel.settings import Settings
from omnichannel.stack import StackInfo, resolve_stack
from schemas.loader import canonical_json
from schemas.publish import register_all
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import catalogue_for

_STACK_KEY = pytest.StashKey[StackInfo]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Any test that uses the stack is an integration test, marked so `-m "not integration"` skips it.
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """Kafka, the Schema Registry and Redis for the whole session; stopped at the end if started here."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def progress(message: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[stack] {message}")

    settings = Settings.from_env()
    with resolve_stack(settings, run_dir=tmp_path_factory.mktemp("stack"), progress=progress) as running:
        request.config.stash[_STACK_KEY] = running.info
        for service in running.info.services:
            progress(service.describe())
        yield running.info


@pytest.fixture(scope="session")
def settings(stack: StackInfo) -> Settings:
    """Settings pointed at the session's stack."""
    return Settings.from_env().with_addresses(stack.kafka.address, stack.registry.address, stack.redis.address)


@pytest.fixture(scope="session")
def register_schema(stack: StackInfo) -> Callable[[str, str], int]:
    """Register a named type's schema under a subject, as `omnichannel schemas register` does for the catalogue.

    Producers only look schema ids up (they never register), so a test writing to a topic of its own
    registers that topic's subject first.
    """
    registry = ConfluentSchemaRegistry(stack.registry.address)
    return lambda subject, fullname: registry.register(subject, canonical_json(fullname))


@pytest.fixture(scope="session")
def registered(settings: Settings) -> Settings:
    """``settings``, with its namespace's catalogue registered as `omnichannel schemas register` does.

    For tests whose producers write the catalogue's own topics without a harness that provisions them.
    """
    assert settings.schema_registry_url is not None
    register_all(ConfluentSchemaRegistry(settings.schema_registry_url), catalogue_for(settings.namespace))
    return settings


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Make a name unique to this test (topics, groups, subjects, Redis key prefixes)."""
    token = uuid.uuid4().hex[:10]
    return lambda prefix: f"{prefix}-{token}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """State which Kafka, registry and Redis ran and how they were resolved."""
    info = config.stash.get(_STACK_KEY, None)
    if info is None:
        terminalreporter.write_line("services: none started (no integration test ran)")
        return
    terminalreporter.section("services under test")
    for service in info.services:
        terminalreporter.write_line(service.describe())
