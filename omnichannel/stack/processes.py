"""Starting, watching and stopping the local server processes the stack launches."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from omnichannel.errors import ServiceStartError

__all__ = ["free_port", "free_ports", "is_alive", "pick_port", "port_is_free", "spawn", "stop", "tail", "wait_until"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: held open together while picked (``free_port()`` twice can return the
    same port, and a broker then fails to format with two listeners on one port)."""
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_is_free(port: int) -> bool:
    """True when ``port`` on 127.0.0.1 can be bound now (so a restarted service can take its old port back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as servers set it: a port in TIME_WAIT after a crash is free for them too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pick_port(preferred: int | None, attempt: int, *, besides: Collection[int] = ()) -> int:
    """``preferred`` on the first attempt when it is free (a restart keeps its address), else any free port
    that is not one of ``besides`` (ports already picked for the same process)."""
    if preferred is not None and attempt == 0 and preferred not in besides and port_is_free(preferred):
        return preferred
    port = free_port()
    while port in besides:
        port = free_port()
    return port


def spawn(argv: Sequence[str], log_file: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a server in its own session (so ``stop`` can end its whole process group), output to a log."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )


def is_alive(pid: int) -> bool:
    """True while a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def stop(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL what is left; never raises for a gone process."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not is_alive(pid):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
) -> None:
    """Poll ``ready`` until it is true; fail early if ``process`` exits, and always within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceStartError(
                f"{what} exited with code {process.returncode} during start-up."
                + (f" Last lines of {log_file}:\n{tail(log_file)}" if log_file else "")
            )
        if ready():
            return
        time.sleep(0.25)
    raise ServiceStartError(
        f"{what} was not ready after {timeout:.0f}s."
        + (f" Last lines of {log_file}:\n{tail(log_file)}" if log_file else "")
    )
