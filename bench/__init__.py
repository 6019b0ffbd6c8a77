"""Speed benchmarks for the issue's targets. Not part of the installed package: run from the repo root as
`.venv/bin/python -m bench.run_all` (or `bench.sha256_rate`, `bench.scan_rate`, `bench.quick_fingerprint`).
"""
