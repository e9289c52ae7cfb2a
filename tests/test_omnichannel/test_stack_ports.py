"""Ports for locally started services: a broker's two listeners never get the same port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from omnichannel.stack import processes
from omnichannel.stack.processes import free_ports, pick_port, port_is_free


def test_free_ports_are_distinct_and_free() -> None:
    ports = free_ports(6)
    assert len(set(ports)) == 6
    assert all(port_is_free(p) for p in ports)


def test_a_second_port_picked_for_the_same_process_is_never_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # The operating system may hand the port just released out again: here it does so twice.
    offered: Iterator[int] = iter([40_001, 40_001, 40_001, 40_002])
    monkeypatch.setattr(processes, "free_port", lambda: next(offered))
    first = pick_port(None, 0)
    assert pick_port(None, 0, besides={first}) == 40_002


def test_a_restart_keeps_its_port_unless_the_process_already_took_it() -> None:
    [port] = free_ports(1)
    assert pick_port(port, 0) == port
    assert pick_port(port, 0, besides={port}) != port
