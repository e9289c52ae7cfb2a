"""What every command prints with: results on stdout, progress and errors on stderr, typed errors as one line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from rich.console import Console

from omnichannel import exit_codes
from omnichannel.errors import OmnichannelError, ServiceUnavailableError

__all__ = ["err", "errors_as_messages", "friendly_errors", "out", "progress"]

F = TypeVar("F", bound=Callable[..., Any])
#: Results (machine-readable where a command says so).
out = Console(soft_wrap=True)
#: Progress of long steps and errors, so stdout stays clean.
err = Console(stderr=True, soft_wrap=True)


@contextmanager
def errors_as_messages() -> Iterator[None]:
    """The project's typed errors become one readable line (no traceback) and an exit status: 75 when a
    service did not answer, 1 otherwise (see :mod:`omnichannel.exit_codes`)."""
    try:
        yield
    except OmnichannelError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        unavailable = isinstance(exc, ServiceUnavailableError)
        sys.exit(exit_codes.UNAVAILABLE if unavailable else exit_codes.ERROR)


def friendly_errors(func: F) -> F:
    """:func:`errors_as_messages` around a whole command."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with errors_as_messages():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def progress(message: str) -> None:
    """One progress line on stderr."""
    err.print(f"[dim]...[/] {message}", markup=True, highlight=False)
