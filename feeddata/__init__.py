"""The data layer: tables, engines, bulk loaders, queries and data sources.

All SQL of the service lives here (the experiment analysis keeps its own aggregation
queries in ``analysis``).
"""
