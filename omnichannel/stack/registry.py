"""Schema Registry: readiness probe, and Apicurio Registry (Confluent-compatible API) run locally."""

from __future__ import annotations

import functools
from pathlib import Path

import httpx

from omnichannel.errors import ServiceStartError
from omnichannel.settings import REGISTRY_VERSION
from omnichannel.stack.maven import registry_jar, require_java
from omnichannel.stack.model import Progress, ServiceInfo
from omnichannel.stack.processes import pick_port, spawn, stop, tail, wait_until

__all__ = ["CCOMPAT_PATH", "registry_answers", "registry_version", "start_local_registry"]

#: Apicurio serves the Confluent Schema Registry API under this path.
CCOMPAT_PATH = "/apis/ccompat/v7"
_START_TIMEOUT_S = 120.0


def registry_answers(url: str, timeout: float = 3.0) -> bool:
    """True when ``GET {url}/subjects`` answers 200 with a JSON list (the Confluent API is up)."""
    try:
        resp = httpx.get(f"{url.rstrip('/')}/subjects", timeout=timeout)
        return resp.status_code == 200 and isinstance(resp.json(), list)
    except (httpx.HTTPError, ValueError):
        return False


def registry_version(url: str) -> str:
    """Best-effort version string of a Confluent-compatible registry (Apicurio or Confluent)."""
    base = url.rstrip("/")
    candidates = [base.removesuffix(CCOMPAT_PATH) + "/apis/registry/v3/system/info", base + "/v1/metadata/version"]
    for candidate in candidates:
        try:
            resp = httpx.get(candidate, timeout=3.0)
            if resp.status_code == 200:
                body = resp.json()
                return f"{body.get('name', 'Confluent Schema Registry')} {body.get('version', '?')}"
        except (httpx.HTTPError, ValueError):
            continue
    return "unknown"


def start_local_registry(cache_dir: Path, run_dir: Path, progress: Progress, *, port: int | None = None) -> ServiceInfo:
    """Start Apicurio Registry on ``port`` when free, else a free port; return once its ccompat API answers.

    Schemas are kept in an H2 database file under ``run_dir``: a registry restarted alone keeps every id it
    handed out, so records already in Kafka stay readable (its default in-memory store would renumber them).
    ``WRITE_DELAY=0``: a registration is on disk when the registry answers, even if it is killed next.
    """
    java = require_java()
    jar = registry_jar(cache_dir, progress)
    home = run_dir / "registry"
    home.mkdir(parents=True, exist_ok=True)
    log_file = home / "registry.log"
    for attempt in range(3):
        http_port = pick_port(port, attempt)
        progress(f"Starting Apicurio Registry {REGISTRY_VERSION} on 127.0.0.1:{http_port}...")
        proc = spawn(
            [
                java,
                "-Xmx384m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                f"-Dquarkus.http.port={http_port}",
                "-Dquarkus.http.host=127.0.0.1",
                "-Dquarkus.log.level=WARN",
                "-Dquarkus.http.access-log.enabled=false",
                f"-Dapicurio.datasource.url=jdbc:h2:file:{home / 'db' / 'registry'};WRITE_DELAY=0",
                "-jar",
                str(jar),
            ],
            log_file,
            cwd=home,
        )
        url = f"http://127.0.0.1:{http_port}{CCOMPAT_PATH}"
        try:
            wait_until(
                functools.partial(registry_answers, url, 1.0),
                what=f"Schema Registry on {url}",
                timeout=_START_TIMEOUT_S,
                process=proc,
                log_file=log_file,
            )
        except ServiceStartError:
            stop(proc.pid)
            if "Address already in use" in tail(log_file, 200) or "Port already bound" in tail(log_file, 200):
                continue
            raise
        return ServiceInfo("registry", url, "local", registry_version(url), pid=proc.pid, log_file=str(log_file))
    raise ServiceStartError(f"The Schema Registry could not bind a free port after 3 attempts; see {log_file}.")
