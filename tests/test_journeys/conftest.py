"""Fixtures of this folder. Helpers live in a uniquely named module: every conftest is called `conftest`, so
`from conftest import ...` in a test would get whichever folder's conftest Python loaded first."""

from journeys_harness import journeys  # noqa: F401
