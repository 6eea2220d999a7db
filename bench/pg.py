"""Throwaway PostgreSQL databases for benchmarks."""

import os

from sqlalchemy import create_engine, text

SERVER = os.environ.get("FEEDLAB_BENCH_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432")


def fresh_database(name: str) -> str:
    """Drop and create database ``name``; return its URL."""
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{SERVER}/{name}"


def database_exists(name: str) -> bool:
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        found = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
    admin.dispose()
    return found is not None
