"""``python -m benchmarks`` (``make bench``): every benchmark in turn; each prints and saves its own results."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("codec", "collector", "streams", "read_api")


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        if subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=False).returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
