"""Benchmark scripts (run as `python bench/<name>.py`; see docs/benchmarks.md)."""
