"""What machine and settings a benchmark ran on, and where results are written."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def describe() -> dict[str, Any]:
    """Cores, CPU model, memory, Python: printed and stored with every result."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        # Which build: the same version runs 10-20 % apart between builds (PGO/LTO or not; benchmarks/README.md).
        "python_build": f"{os.path.realpath(sys.executable)} ({', '.join(platform.python_build())})",
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": load_average(),
    }


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (other engineers' runs share these cores)."""
    return [round(x, 2) for x in os.getloadavg()]


def tree_state() -> dict[str, Any]:
    """Which code was measured: the commit, and the product files changed but not committed (a shared tree)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], capture_output=True, text=True, check=False, cwd=Path(__file__).parent)
        return done.stdout

    # Not stripped: a porcelain line starts with its status columns (" M path"), the path at column 3.
    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if not line[3:].startswith("benchmarks/")]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_files": len(dirty)}


def save(name: str, result: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (with the code measured, unless the result says) and return its path."""
    result.setdefault("tree", tree_state())
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
