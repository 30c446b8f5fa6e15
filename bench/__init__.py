"""Benchmarks, run from the repository root as modules: `.venv/bin/python -m bench.<name>` (`make bench` runs them all).

common.py (machine facts, the results file) and report.py (bench/REPORT.md) are helpers, not benchmarks.
"""
