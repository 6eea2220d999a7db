"""Benchmarks: each prints a table and writes ``bench/results/<name>.json``; the runner
regenerates BENCHMARKS.md from every result present."""
