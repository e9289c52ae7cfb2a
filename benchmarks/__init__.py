"""Benchmarks: each reports its figures beside a ceiling measured in the same run, with the machine.

Not part of the test suite. Run one with ``python -m benchmarks.<name>``; see benchmarks/README.md.
"""
