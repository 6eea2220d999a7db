"""Experiment analysis: SQL aggregation, statistics, reports (issue 6)."""
