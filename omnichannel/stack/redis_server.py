"""Redis: readiness probe, and a ``redis-server`` (Debian's package) started with an append-only file."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import redis

from omnichannel.errors import ServiceStartError
from omnichannel.redis_clients import sync_redis
from omnichannel.stack.model import Progress, ServiceInfo
from omnichannel.stack.processes import pick_port, spawn, stop, tail, wait_until

__all__ = ["redis_answers", "redis_version", "require_redis_server", "start_local_redis"]


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    """True when the server at ``url`` answers PING."""
    client = sync_redis(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_version(url: str) -> str:
    """The server's ``redis_version`` from INFO, or ``unknown``."""
    client = sync_redis(url, socket_timeout=2.0)
    try:
        info = client.info("server")
        if "redis_version" not in info and info:  # a cluster client answers per node: {"host:port": {...}}
            info = next(iter(info.values()))
        return str(info.get("redis_version", "unknown"))
    except redis.RedisError:
        return "unknown"
    finally:
        client.close()


def require_redis_server(install_missing: bool, progress: Progress) -> str:
    """Path of ``redis-server``; installs Debian's package when absent, allowed, and running as root."""
    found = shutil.which("redis-server")
    if found:
        return found
    can_install = install_missing and os.geteuid() == 0 and shutil.which("apt-get") is not None
    if not can_install:
        raise ServiceStartError(
            "`redis-server` is not installed. Install it (Debian/Ubuntu: `sudo apt-get install -y "
            "redis-server`; macOS: `brew install redis`) or set REDIS_URL to an existing Redis."
        )
    progress("Installing Debian's redis-server package (first run only)...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise ServiceStartError(
                f"`{' '.join(argv)}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}. "
                "Install redis-server by hand or set REDIS_URL."
            )
    found = shutil.which("redis-server")
    if not found:
        raise ServiceStartError("redis-server was installed but is not on PATH; add /usr/bin to PATH.")
    return found


def start_local_redis(
    run_dir: Path,
    install_missing: bool,
    progress: Progress,
    *,
    password: str | None = None,
    port: int | None = None,
) -> ServiceInfo:
    """Start ``redis-server`` on loopback with an append-only file; return once it answers PING.

    As in docker-compose, every write goes to an AOF under ``run_dir/redis`` fsynced once a second, so carts,
    identity links and fences survive a restart (at most about a second of writes is lost on a crash).
    ``port`` is taken back when free (a restart keeps its address), else a free port is used.

    With ``password`` the server requires it (``requirepass``) and the returned address carries it
    (``redis://:<password>@127.0.0.1:<port>/0``), as a deployment's ``REDIS_URL`` would.
    """
    binary = require_redis_server(install_missing, progress)
    home = run_dir / "redis"
    home.mkdir(parents=True, exist_ok=True)
    log_file = home / "redis.log"
    for attempt in range(3):
        redis_port = pick_port(port, attempt)
        progress(f"Starting redis-server on 127.0.0.1:{redis_port}...")
        proc = spawn(
            [
                binary,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                *server_options(home),
                *(["--requirepass", password] if password else []),
            ],
            log_file,
        )
        auth = f":{quote(password, safe='')}@" if password else ""
        url = f"redis://{auth}127.0.0.1:{redis_port}/0"
        try:
            wait_until(
                functools.partial(redis_answers, url, 0.5),
                what=f"Redis on {url}",
                timeout=30.0,
                process=proc,
                log_file=log_file,
            )
        except ServiceStartError:
            stop(proc.pid)
            if "Address already in use" in tail(log_file, 50):
                continue
            raise
        return ServiceInfo("redis", url, "local", redis_version(url), pid=proc.pid, log_file=str(log_file))
    raise ServiceStartError(f"Redis could not bind a free port after 3 attempts; see {log_file}.")


def server_options(home: Path) -> list[str]:
    """The persistence and safety options of every local redis-server (one node or a cluster's).

    AOF only (no RDB snapshots): replayed on start, rewritten in the background as it grows.
    """
    return [
        *("--save", "", "--appendonly", "yes", "--appendfsync", "everysec"),
        *("--dir", str(home), "--daemonize", "no", "--protected-mode", "yes"),
    ]
