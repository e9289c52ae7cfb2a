"""Fixtures of this folder (helpers live in faults_harness: every conftest is called `conftest`)."""

from faults_harness import start_backbone  # noqa: F401
