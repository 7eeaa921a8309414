"""Benchmarks of the learned router against its baselines (``make bench``).

Each ``bench_*.py`` module measures one thing, writes ``results/<name>.json`` (+ PNGs) and
rewrites its section of BENCHMARKS.md; ``run_all`` runs them all."""
