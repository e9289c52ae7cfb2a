"""`omnichannel demo --scripted`: the journey runs end to end and prints a timeline with latencies."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from omnichannel.settings import Settings


def test_scripted_demo_prints_each_step_with_its_latency(settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "REDIS_URL": settings.redis_url or "",
        "OMNICHANNEL_NAMESPACE": f"demo{uuid.uuid4().hex[:8]}",
        "OMNICHANNEL_PARTITIONS": "2",
        "OMNICHANNEL_STATE_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "omnichannel.cli", "demo", "--scripted"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    steps = re.findall(
        r"^\s+\+\s*\d+ ms\s+(phone|tablet)\s+(.+?)\s+accepted in\s+\d+ ms\s+-> on the (\w+)'s live cart "
        r"after\s+\d+ ms$",
        done.stdout,
        flags=re.MULTILINE,
    )
    assert [(device, seen_by) for device, _, seen_by in steps] == [
        ("phone", "phone"),
        ("phone", "phone"),
        ("tablet", "tablet"),
        ("tablet", "phone"),
    ], done.stdout
