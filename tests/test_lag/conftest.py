"""Fixtures of this folder. Helpers live in a uniquely named module: every conftest is called `conftest`, so
`from conftest import ...` in a test would get whichever folder's conftest Python loaded first."""

from lag_harness import bootstrap, clock, kafka_tool, kit, make_monitor  # noqa: F401
