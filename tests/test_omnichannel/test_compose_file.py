"""docker-compose.yml stays valid (against the Compose Specification's JSON Schema, vendored in ops/compose-spec/)
and speaks the same variables as the CLI (no Docker engine needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from omnichannel.stack.docker import REDIS_IMAGE, REGISTRY_IMAGE

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_every_service_has_an_image_or_a_build_and_depends_only_on_defined_services() -> None:
    services = _compose()["services"]
    assert {"kafka", "registry", "redis"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, f"service {name} has neither image nor build"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on undefined service {dependency}"
    assert (ROOT / "Dockerfile").exists()


def test_kafka_runs_in_kraft_mode_and_images_match_the_testcontainers_path() -> None:
    services = _compose()["services"]
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["registry"]["image"] == REGISTRY_IMAGE
    assert services["redis"]["image"] == REDIS_IMAGE


def test_backbone_services_use_the_same_environment_variables_as_the_cli() -> None:
    services = _compose()["services"]
    backbone = [s for s in services.values() if "build" in s]
    assert backbone, "the backbone's own processes are missing"
    for service in backbone:
        env = service["environment"]
        assert set(env) >= {"KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "REDIS_URL"}
        assert env["SCHEMA_REGISTRY_URL"].endswith("/apis/ccompat/v7")


def test_the_image_copies_every_package_the_distribution_ships() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    include = pyproject.split("include = [", 1)[1].split("]", 1)[0]
    packages = [name.strip().strip('"').rstrip("*") for name in include.split(",") if name.strip()]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, f"the Docker image misses the {package} package"


def _spec_problems(document: dict[str, Any]) -> list[str]:
    schema = json.loads((ROOT / "ops" / "compose-spec" / "compose-spec.json").read_text())
    validator = jsonschema_rs.validator_for(schema)
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_file_is_valid_against_the_compose_specification_schema() -> None:
    assert _spec_problems(_compose()) == []


def test_the_schema_check_catches_a_misspelt_key_and_a_wrong_type() -> None:
    broken = _compose()
    broken["services"]["redis"] = {**broken["services"]["redis"], "restart": 5, "healthchek": {}}
    found = _spec_problems(broken)
    assert any("healthchek" in problem for problem in found), found
    assert any(problem.startswith("services/redis/restart") for problem in found), found


def test_redis_keeps_an_append_only_file_fsynced_every_second_as_the_local_stack_does() -> None:
    command = _compose()["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
