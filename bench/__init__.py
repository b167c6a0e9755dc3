"""Benchmarks and their analysis (``python -m bench.run_all``); not part of the installed package."""
