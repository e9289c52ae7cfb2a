"""librdkafka's own log lines, routed through the project's logging instead of raw ``%3|...|FAIL|rdkafka`` lines.

A librdkafka client that cannot reach its broker prints a line per reconnect attempt on stderr (hundreds in
half a minute). Clients built with :func:`librdkafka_logger` hand them to Python logging instead: every line at
DEBUG (``-vv`` shows them), and only the first error-level line of a client at WARNING, rewritten as one clear
sentence. The command's own typed error then follows as its one ``error:`` line.

librdkafka queues its log lines until the client is polled; callers ``poll(0)`` after a failed request so the
warning comes out before the error.
"""

from __future__ import annotations

import logging
from typing import Any

from omnichannel.logs import kv

__all__ = ["LibrdkafkaLog", "librdkafka_logger"]

log = logging.getLogger("omnichannel.librdkafka")


class LibrdkafkaLog(logging.Logger):
    """A ``logger`` for a confluent-kafka client config (it calls ``.log(level, fmt, *args)``).

    ``announce=False`` keeps even the first error at DEBUG, for callers that report outages themselves.
    """

    def __init__(self, bootstrap: str, *, announce: bool = True) -> None:
        super().__init__("omnichannel.librdkafka")
        self._bootstrap = bootstrap
        self._announce = announce

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Route one librdkafka line (``level`` is already a Python level, ERROR for ``%3``)."""
        detail = (str(msg) % args) if args else str(msg)
        if "SASL authentication error" in detail:  # reachable, credentials refused: the command's error says so
            self._announce = False
        if self._announce and level >= logging.ERROR:
            self._announce = False  # once per client: the command's own error says the rest
            log.warning(
                "Kafka is not reachable; retrying until the request times out (details with -vv)",
                extra=kv(bootstrap=self._bootstrap, librdkafka=detail),
            )
            return
        log.debug(msg, *args)


def librdkafka_logger(bootstrap: str, *, announce: bool = True) -> LibrdkafkaLog:
    """A logger for ``{"logger": ...}`` in a librdkafka client config; see the module docstring."""
    return LibrdkafkaLog(bootstrap, announce=announce)
