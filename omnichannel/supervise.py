"""``omnichannel worker --supervise``: run the worker as a child and restart it when it stops for an outage.

The worker exits 75 (EX_TEMPFAIL) without committing when Kafka or Redis stay unreachable (a restart re-reads
what was not committed). The supervisor restarts it after a back-off (1 s, doubling to 30 s; back to 1 s once a
run lasted a minute), forwards SIGTERM/SIGINT to it and exits with its status. Any other exit status (a bad
setting, a bug) ends the supervisor too: restarting would only repeat it. Under systemd or Kubernetes, let them
restart instead (ops/systemd/omnichannel-worker.service).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Final

from omnichannel.exit_codes import UNAVAILABLE
from omnichannel.logs import kv

__all__ = ["supervise", "worker_argv"]

log = logging.getLogger(__name__)

_FIRST_DELAY_S: Final = 1.0
_MAX_DELAY_S: Final = 30.0
_HEALTHY_RUN_S: Final = 60.0


def supervise(argv: Sequence[str], *, first_delay_s: float = _FIRST_DELAY_S) -> int:
    """Run ``argv`` until it exits with something other than 75, or a stop signal; returns its status."""
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    delay = first_delay_s
    restarts = 0
    try:
        while True:
            started = time.monotonic()
            child = subprocess.Popen(list(argv))
            status = child.wait()
            if stopping.is_set() or status != UNAVAILABLE:
                return status
            if time.monotonic() - started >= _HEALTHY_RUN_S:
                delay = first_delay_s
            restarts += 1
            log.warning(
                "worker stopped: Kafka or Redis unavailable; restarting",
                extra=kv(exit_status=status, restart=restarts, in_seconds=delay),
            )
            if stopping.wait(delay):
                return status
            delay = min(delay * 2, _MAX_DELAY_S)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def worker_argv(verbose: int, app_id: str | None, metrics_port: int | None) -> list[str]:
    """The command line of the supervised worker (the same options, without ``--supervise``)."""
    argv = [sys.executable, "-m", "omnichannel.cli", *(["-" + "v" * verbose] if verbose else []), "worker"]
    if app_id:
        argv += ["--app-id", app_id]
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port)]
    return argv
