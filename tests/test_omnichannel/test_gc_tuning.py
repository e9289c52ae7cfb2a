"""The long-lived processes run with the tuned cycle collector once their start-up is done.

Each check runs in a child process: freezing the heap and changing the thresholds is process-wide, and the
test process must keep CPython's defaults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from omnichannel.gc_tuning import GC_NEW_OBJECTS
from omnichannel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

# Prints the collector's state as the caller of ``uvicorn.run`` leaves it (uvicorn.run itself is replaced).
_PROBE = """
import gc, json, sys
import uvicorn
import omnichannel.serve as serve

def fake_run(app, **kwargs):
    print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(), "app": repr(app)[:80]}))

uvicorn.run = fake_run
"""


def _child(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_tune_gc_freezes_start_up_and_raises_the_young_threshold() -> None:
    state = _child(
        """
        import gc, json
        before = gc.get_threshold()
        from omnichannel.gc_tuning import tune_gc
        tune_gc()
        print(json.dumps({"before": before, "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
        """
    )
    assert state["before"] == [700, 10, 10]
    assert state["threshold"] == [GC_NEW_OBJECTS, 20, 100]
    assert isinstance(state["frozen"], int) and state["frozen"] > 1000  # the modules imported so far


def _service_env(settings: Settings) -> dict[str, str]:
    assert settings.kafka_bootstrap_servers and settings.schema_registry_url and settings.redis_url
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "REDIS_URL": settings.redis_url,
        "OMNICHANNEL_NAMESPACE": settings.namespace,
        "OMNICHANNEL_DEV": "1",
    }


def test_omnichannel_serve_hands_uvicorn_its_app_with_the_collector_tuned(registered: Settings) -> None:
    state = _child(
        _PROBE
        + """
from omnichannel.settings import Settings
from omnichannel.stack import connect
serve.run_server(connect(Settings.from_env()), "127.0.0.1", 0)
""",
        _service_env(registered),
    )
    assert state["threshold"] == [GC_NEW_OBJECTS, 20, 100]
    assert isinstance(state["frozen"], int) and state["frozen"] > 1000
    assert "FastAPI" in str(state["app"])


def test_each_serve_worker_process_tunes_once_its_app_is_built(registered: Settings) -> None:
    state = _child(
        """
import gc, json
import omnichannel.serve as serve
app = serve.worker_app()
print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(), "app": repr(app)[:80]}))
""",
        _service_env(registered),
    )
    assert state["threshold"] == [GC_NEW_OBJECTS, 20, 100]
    assert isinstance(state["frozen"], int) and state["frozen"] > 1000


def test_omnichannel_rebuild_replays_with_the_worker_s_collector_settings(settings: Settings) -> None:
    state = _child(
        """
import gc, json, sys
import streams.rebuild

async def fake_rebuild(*args, **kwargs):
    print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
    sys.exit(0)  # the replay itself is tested in tests/test_streams/test_rebuild.py

streams.rebuild.rebuild = fake_rebuild
from omnichannel.cli import main
sys.argv = ["omnichannel", "rebuild", "--yes"]
main()
""",
        _service_env(settings),
    )
    assert state["threshold"] == [GC_NEW_OBJECTS, 20, 100]
    assert isinstance(state["frozen"], int) and state["frozen"] > 1000
