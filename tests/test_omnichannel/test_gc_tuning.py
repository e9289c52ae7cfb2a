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


def test_the_batch_collector_leaves_the_young_generation_empty_and_follows_the_thresholds() -> None:
    state = _child(
        """
        import gc, json
        from omnichannel.gc_tuning import BatchCollector, tune_gc
        tune_gc()
        now = [1000.0]
        collect = BatchCollector(full_min_interval_s=300.0, clock=lambda: now[0])

        # A cache replacing its entries one for one, as the worker's cluster cache does: the net count that
        # triggers CPython's own collections hardly moves, while the replacements pile up in the young generation.
        cache = {n: {"state": [n]} for n in range(5000)}
        gc.collect()
        for round_ in range(8):
            for n in range(5000):
                cache[n] = {"state": [n, round_]}
        piled_up = len(gc.get_objects(generation=0))
        generations = [collect()]
        left = len(gc.get_objects(generation=0))
        for _ in range(60):
            generations.append(collect())
        now[0] += 301.0
        for _ in range(2000):
            generations.append(collect())
        print(json.dumps({"piled_up": piled_up, "left": left, "generations": generations}))
        """
    )
    assert isinstance(state["piled_up"], int) and state["piled_up"] > 10_000  # CPython left them all young
    assert isinstance(state["left"], int) and state["left"] < 10  # the list holding the answer, made after
    generations = state["generations"]
    assert isinstance(generations, list)
    # The middle generation every 20th call (the threshold tune_gc sets), never a full one inside the interval...
    assert [n for n, g in enumerate(generations[:61]) if g == 1] == [19, 39, 59]
    assert 2 not in generations[:61]
    # ... and one once the interval has passed and 100 middle collections were made since the last full one.
    assert generations.count(2) == 1
    full_at = generations.index(2)
    assert generations[:full_at].count(1) >= 100 - 1
