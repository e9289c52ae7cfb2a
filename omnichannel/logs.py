"""Structured, quiet-by-default logging: one ``key=value`` line per record on stderr.

Library modules only do ``logging.getLogger(__name__)``; entry points (CLI, workers) call
:func:`configure` once. WARNING is the default level so normal runs print nothing but results.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["configure", "kv"]

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... msg="..." key=value ...`` (extra= fields appended)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        parts += [f"{k}={_quote(v)}" for k, v in vars(record).items() if k not in _RESERVED]
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def _quote(value: Any) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "-_.:/@" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def kv(**fields: Any) -> dict[str, Any]:
    """Shorthand for ``extra=``: ``log.info("started", extra=kv(port=9092))``."""
    return fields


def configure(verbosity: int = 0) -> None:
    """Install the formatter on the root logger: 0 -> WARNING, 1 -> INFO, 2+ -> DEBUG."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party clients are chatty at INFO; they only speak up for real problems.
    for noisy in ("aiokafka", "faust", "mode", "urllib3", "httpx", "testcontainers", "docker"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
