"""Data sources: the synthetic generator, MovieLens, plain CSV/Parquet files."""
