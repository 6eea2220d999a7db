"""Experiment analysis: per-arm sufficient statistics, tests, health checks and reports.

- ``sufficient``: ``SampleMean``, ``SampleRatio``, ``AdjustedMean``, ``AdjustedRatio``
  (sums, sums of squares, cross-products);
- ``inference``: ``WelchTTest``, ``DeltaMethodTest``, ``CupedTTest``, ``CupedDeltaTest``,
  ``MannWhitneyTest``, ``holm``; ``bootstrap``: ``PoissonBootstrap``; ``power``:
  ``PowerAnalysis``; ``health``: ``SampleRatioCheck`` and the other checks;
- inputs: ``logs.reduce_logs`` (course log files), ``database.read_experiment`` (SQL over
  exposures and likes), both giving ``data.ExperimentData``;
- ``report.analyse`` -> ``Report`` (``to_dict``), ``render.to_markdown`` / ``to_html``;
- ``validation``: ``aa_resalt`` and ``coverage_simulation``; ``synthetic_logs`` for tests.
"""
