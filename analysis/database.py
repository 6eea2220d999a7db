"""The service's own database as the analysis input, aggregated in SQL.

Exposures (``exposures``, see ``feeddata.schema``) are joined with the likes of
``feed_data`` in the database; only per-user rows and per-arm sums come back:

1. per (user, arm, UTC day): exposures, posts shown (at most k, from the exposure's text
   list ``post_ids``), first and last exposure, into a temporary table (one pass over the
   exposures, no join);
2. per (user, arm, day): hits and shown posts liked within the window, from the pairs of
   an exposure and a like of its user in the same time bucket (see ``_create_hits``);
3. per user: those summed over days, whether the user saw more than one arm (crossover
   users), and the user's likes before the first exposure (the CUPED covariate) and from
   it to the end of the experiment;
4. per arm: every sum of ``analysis.data.moment_terms()`` (n, sums, sums of squares and
   cross-products), and per (arm, day) the primary metric's sums.

Forced (QA) assignments are not randomised and are left out. Works on PostgreSQL and
SQLite; times are naive UTC as everywhere in feedlab. On PostgreSQL the per-user rows come
back through COPY, as CSV parsed by pandas, rather than as one Python object per value.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from analysis.data import (
    COLUMNS,
    ArmStats,
    DailyStats,
    ExperimentData,
    UserTable,
    moment_name,
    moment_terms,
    order_arms,
)
from analysis.sufficient import SampleRatio
from feeddata.db import Bind, connect, is_postgres

USER_DAYS = "feedlab_analysis_user_days"
HITS = "feedlab_analysis_hits"
PER_USER = "feedlab_analysis_per_user"
USERS = "feedlab_analysis_users"
TEMP_TABLES = (USERS, PER_USER, HITS, USER_DAYS)

BUCKET_WINDOWS = 4
"""Time buckets for matching likes with exposures are this many windows wide: wider
buckets offer an exposure more likes to check, narrower ones repeat more likes."""

_EXPOSURES = "exposures e WHERE e.experiment = :experiment AND NOT e.forced"


def _shown(conn: Connection) -> str:
    """SQL for the number of posts in the text list "[3644 4529 4704]" of exposure ``e``
    (single spaces, "[]" when none), at most :k. The list is ASCII, so PostgreSQL can count
    bytes (constant time) rather than characters."""
    length = "octet_length" if is_postgres(conn) else "length"
    posts = f"{length}(e.post_ids) - {length}(REPLACE(e.post_ids, ' ', '')) + 1"
    return f"CASE WHEN e.post_ids = '[]' THEN 0 WHEN {posts} > :k THEN :k ELSE {posts} END"


def _window_end(conn: Connection, column: str) -> str:
    """SQL for ``column`` + :window seconds, comparable with stored timestamps."""
    if is_postgres(conn):
        return f"{column} + make_interval(secs => :window)"
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime's %f
    # gives milliseconds, so pad to microseconds to compare as text.
    return f"(strftime('%Y-%m-%d %H:%M:%f', {column}, '+' || :window || ' seconds') || '000')"


def _day(conn: Connection, column: str) -> str:
    return f"CAST({column} AS DATE)" if is_postgres(conn) else f"date({column})"


def _bucket(conn: Connection, column: str, minus_window: bool = False) -> str:
    """SQL for the :bucket_s-second time bucket holding ``column`` (or ``column`` minus
    the window): any value that is equal for two times exactly when they share a bucket."""
    if is_postgres(conn):
        moment = f"{column} - make_interval(secs => :window)" if minus_window else column
        return f"date_bin(make_interval(secs => :bucket_s), {moment}, TIMESTAMP '2000-01-01')"
    seconds = f"CAST(strftime('%s', {column}) AS INTEGER)"
    return f"(({seconds}{' - :window' if minus_window else ''}) / :bucket_s)"


def _times_shown(conn: Connection) -> str:
    """SQL for how often the liked post ``l.post_id`` is among the first :k posts of the
    exposure ``e``: from its text list on PostgreSQL (no join), ``exposure_posts`` on SQLite."""
    if is_postgres(conn):
        first_k = "(string_to_array(btrim(e.post_ids, '[]'), ' '))[1:CAST(:k AS INTEGER)]"
        return f"cardinality(array_positions({first_k}, CAST(l.post_id AS TEXT)))"
    return (
        "(SELECT COUNT(*) FROM exposure_posts p WHERE p.request_id = e.request_id "
        "AND p.position < :k AND p.post_id = l.post_id)"
    )


def _create_user_days(conn: Connection, params: dict[str, Any]) -> None:
    day = _day(conn, "e.request_time")
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {USER_DAYS} AS
        SELECT e.user_id, e.arm, {day} AS day, COUNT(*) AS exposures, SUM({_shown(conn)}) AS shown,
            MIN(e.request_time) AS first_seen, MAX(e.request_time) AS last_seen
        FROM {_EXPOSURES}
        GROUP BY e.user_id, e.arm, {day}
        """),
        params,
    )


def _create_hits(conn: Connection, params: dict[str, Any]) -> None:
    """Per (user, arm, day): exposures followed by a like of a shown post within the
    window, and how many shown posts were so liked.

    A like at s counts for an exposure at t when t <= s <= t + window. Joining exposures
    with likes on the user alone pairs every exposure with every like of its user (tens
    of thousands of pairs per active user); joining on (user, time bucket), with buckets
    at least a window wide, pairs it only with likes of its own bucket: each like is
    offered under its bucket and, when different, under the bucket of s - window. The few
    pairs left are checked against the window and the shown posts. Only likes between the
    first exposure and one window after the last take part.
    """
    likes = """feed_data f WHERE f.action = 'like'
        AND f.timestamp >= :first_seen AND f.timestamp <= :last_end"""
    # the exposure's identity: PostgreSQL's row address is 6 bytes to the id's 33, and the
    # exposures are the side it keeps in memory
    exposure = "e.ctid" if is_postgres(conn) else "e.request_id"
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {HITS} AS
        WITH likes AS (
            SELECT f.user_id, f.post_id, f.timestamp, {_bucket(conn, "f.timestamp")} AS bucket
            FROM {likes}
            UNION ALL
            SELECT f.user_id, f.post_id, f.timestamp,
                {_bucket(conn, "f.timestamp", minus_window=True)}
            FROM {likes}
                AND {_bucket(conn, "f.timestamp", True)} <> {_bucket(conn, "f.timestamp")}
        ),
        liked AS (
            -- (exposure, post) pairs liked within the window, once however often liked
            SELECT DISTINCT {exposure} AS exposure, e.user_id, e.arm, e.request_time,
                l.post_id, {_times_shown(conn)} AS liked_shown
            FROM exposures e
            JOIN likes l ON l.user_id = e.user_id
                AND l.bucket = {_bucket(conn, "e.request_time")}
                AND l.timestamp >= e.request_time
                AND l.timestamp <= {_window_end(conn, "e.request_time")}
            WHERE e.experiment = :experiment AND NOT e.forced
        ),
        per_request AS (
            SELECT user_id, arm, request_time, SUM(liked_shown) AS liked_shown
            FROM liked WHERE liked_shown > 0
            GROUP BY exposure, user_id, arm, request_time
        )
        SELECT user_id, arm, {_day(conn, "request_time")} AS day, COUNT(*) AS hits,
            SUM(liked_shown) AS liked_shown
        FROM per_request
        GROUP BY user_id, arm, {_day(conn, "request_time")}
        """),
        params,
    )


def _create_users(conn: Connection, last_end: Any) -> None:
    """Per user: the sums over days, whether the user saw more than one arm (``arms`` 1:
    one arm, 2: more, a crossover user), then the user's likes before the first exposure
    and from it to :last_end."""
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {PER_USER} AS
        SELECT d.user_id, MIN(d.arm) AS arm,
            CASE WHEN MIN(d.arm) = MAX(d.arm) THEN 1 ELSE 2 END AS arms,
            SUM(d.exposures) AS exposures, SUM(COALESCE(h.hits, 0)) AS hits,
            SUM(d.shown) AS shown, SUM(COALESCE(h.liked_shown, 0)) AS liked_shown,
            MIN(d.first_seen) AS first_seen, MAX(d.last_seen) AS last_seen
        FROM {USER_DAYS} d
        LEFT JOIN {HITS} h ON h.user_id = d.user_id AND h.arm = d.arm AND h.day = d.day
        GROUP BY d.user_id
        """)
    )
    _analyze(conn, PER_USER)
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {USERS} AS
        WITH user_likes AS (
            SELECT u.user_id,
                SUM(CASE WHEN f.timestamp < u.first_seen THEN 1 ELSE 0 END) AS pre_likes,
                SUM(CASE WHEN f.timestamp >= u.first_seen AND f.timestamp <= :last_end
                    THEN 1 ELSE 0 END) AS likes
            FROM {PER_USER} u
            JOIN feed_data f ON f.user_id = u.user_id AND f.action = 'like'
            GROUP BY u.user_id
        )
        SELECT u.user_id, u.arm, u.arms, u.exposures, u.hits, u.shown, u.liked_shown,
            COALESCE(l.likes, 0) AS likes,
            CASE WHEN COALESCE(l.likes, 0) > 0 THEN 1 ELSE 0 END AS liked,
            COALESCE(l.pre_likes, 0) AS pre_likes, u.first_seen, u.last_seen
        FROM {PER_USER} u LEFT JOIN user_likes l ON l.user_id = u.user_id
        """),
        {"last_end": last_end},
    )


def _create_temp_tables(conn: Connection, params: dict[str, Any]) -> None:
    postgres = is_postgres(conn)
    if postgres:
        # The planner cannot estimate these joins and, left alone, sorts both tables for a
        # merge join or loops over an index per exposure; hash joins over sequential scans
        # are what scales. It also JIT-compiles them for most of a second at any size.
        # Its guess of the (user, day) groups is ten times too many, which makes passing
        # partial aggregates between parallel workers look dearer than it is.
        for setting in (
            "jit = off",
            "enable_mergejoin = off",
            "enable_nestloop = off",
            "parallel_tuple_cost = 0.01",
        ):
            conn.execute(text(f"SET LOCAL {setting}"))
        conn.execute(text("SET LOCAL work_mem = '64MB'"))
    for table in TEMP_TABLES:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    _create_user_days(conn, params)
    first_seen, last_end = conn.execute(
        text(f"SELECT MIN(first_seen), {_window_end(conn, 'MAX(last_seen)')} FROM {USER_DAYS}"),
        params,
    ).one()
    # bound back as read, so that SQLite compares its text timestamps like with like
    params = {
        **params,
        "first_seen": first_seen,
        "last_end": last_end,
        "bucket_s": BUCKET_WINDOWS * max(int(params["window"]), 1),
    }
    _create_hits(conn, params)
    _analyze(conn, USER_DAYS, HITS)
    _create_users(conn, last_end)
    _analyze(conn, USERS)


def _analyze(conn: Connection, *tables: str) -> None:
    """Statistics of temporary tables for PostgreSQL's estimates (it has none until then)."""
    if is_postgres(conn):
        for table in tables:
            conn.execute(text(f"ANALYZE {table}"))


def _moments_sql() -> str:
    parts = []
    for term in moment_terms():
        if not term:
            parts.append("COUNT(*) AS n")
        elif len(term) == 1:
            parts.append(f"SUM(CAST({term[0]} AS BIGINT)) AS {moment_name(term)}")
        else:
            a, b = term
            parts.append(f"SUM(CAST({a} AS BIGINT) * {b}) AS {moment_name(term)}")
    return ", ".join(parts)


def read_experiment(
    *,
    bind: Bind,
    experiment: str,
    window: int = 3600,
    k: int = 5,
    user_rows: bool = True,
) -> ExperimentData:
    """The experiment's per-arm sufficient statistics, daily statistics and health facts,
    aggregated in SQL; per-user rows too when ``user_rows`` (for the bootstrap, Mann-Whitney
    and the likes histogram; a few integers per user, never the raw logs)."""
    if window < 0 or k < 1:
        raise ValueError(f"window must be >= 0 and k >= 1, got window={window}, k={k}")
    params = {"experiment": experiment, "window": window, "k": k}
    with connect(bind) as conn:
        source = f"database {conn.engine.url.render_as_string(hide_password=True)}"
        _create_temp_tables(conn, params)
        try:
            return _read(conn, experiment, source, user_rows)
        finally:
            for table in TEMP_TABLES:
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))


def _read(conn: Connection, experiment: str, source: str, user_rows: bool) -> ExperimentData:
    moments = conn.execute(
        text(f"SELECT arm, {_moments_sql()} FROM {USERS} WHERE arms = 1 GROUP BY arm")
    ).mappings()
    sums = {row["arm"]: {k: float(v or 0) for k, v in row.items() if k != "arm"} for row in moments}
    arms = order_arms(list(sums))
    crossover = [
        int(u)
        for (u,) in conn.execute(text(f"SELECT user_id FROM {USERS} WHERE arms > 1 ORDER BY 1"))
    ]
    seen, likes, first, last = conn.execute(
        text(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN arms = 1 THEN likes + pre_likes END), 0), "
            "MIN(CASE WHEN arms = 1 THEN first_seen END), "
            f"MAX(CASE WHEN arms = 1 THEN last_seen END) FROM {USERS}"
        )
    ).one()
    daily_rows = conn.execute(
        text(f"""
        WITH d AS (
            SELECT d.arm, d.day, d.exposures, COALESCE(h.hits, 0) AS hits
            FROM {USER_DAYS} d
            LEFT JOIN {HITS} h ON h.user_id = d.user_id AND h.arm = d.arm AND h.day = d.day
            WHERE d.user_id NOT IN (SELECT user_id FROM {USERS} WHERE arms > 1)
        )
        SELECT arm, day, COUNT(*) AS n,
            SUM(CAST(hits AS BIGINT)), SUM(CAST(hits AS BIGINT) * hits),
            SUM(CAST(exposures AS BIGINT)), SUM(CAST(exposures AS BIGINT) * exposures),
            SUM(CAST(hits AS BIGINT) * exposures)
        FROM d
        GROUP BY arm, day ORDER BY day, arm
        """)
    ).all()
    daily = tuple(
        DailyStats(
            day=str(day)[:10],
            arm=arm,
            stat=SampleRatio(int(n), *(float(v or 0) for v in rest)),
        )
        for arm, day, n, *rest in daily_rows
    )
    table = _user_table(conn, arms) if user_rows else None
    return ExperimentData(
        source=source,
        experiment=experiment,
        arms=arms,
        arm_stats={arm: ArmStats.from_moments(arm, sums[arm]) for arm in arms},
        daily=daily,
        crossover_users=tuple(crossover),
        users_seen=int(seen),
        exposures=int(sum(s["sum_exposures"] for s in sums.values())),
        likes=int(likes),
        time_range=None if first is None else (_epoch(first), _epoch(last)),
        users=table,
    )


def _user_table(conn: Connection, arms: tuple[str, ...]) -> UserTable:
    columns = [c for c in COLUMNS if c != "liked"]
    names = ["user_id", "arm", *columns]
    query = f"SELECT {', '.join(names)} FROM {USERS} WHERE arms = 1 ORDER BY 1"
    if is_postgres(conn):
        frame = _copy_rows(conn, query, names)
    else:
        frame = pd.DataFrame.from_records(conn.execute(text(query)).all(), columns=names)
    codes = pd.Categorical(frame["arm"].astype(str), categories=list(arms)).codes
    values = {c: frame[c].to_numpy(np.int64) for c in ["user_id", *columns]}
    return UserTable(arms=arms, arm=codes.astype(np.int64), **values)


def _copy_rows(conn: Connection, query: str, names: list[str]) -> pd.DataFrame:
    """The rows of ``query`` through COPY: one CSV stream, parsed in C."""
    buffer = io.BytesIO()
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", buffer)
    finally:
        cursor.close()
    buffer.seek(0)
    return pd.read_csv(buffer, names=names, dtype={"arm": str}, keep_default_na=False)


def _epoch(value: datetime | str) -> int:
    if isinstance(value, str):  # SQLite returns text from aggregates over temp tables
        value = datetime.fromisoformat(value)
    return int(value.replace(tzinfo=UTC).timestamp())


def read_feed_history(*, bind: Bind, since: datetime | None = None) -> UserTable:
    """Historical users of ``feed_data`` as one pseudo-arm for A/A re-salting: views as
    exposures and shown posts, liked views (``target`` = 1) as hits, likes since ``since``
    (all when None) as likes and before it as the covariate."""
    since_sql = "(:since IS NULL OR f.timestamp >= :since)"
    query = text(f"""
        SELECT f.user_id,
            SUM(CASE WHEN f.action = 'view' AND {since_sql} THEN 1 ELSE 0 END) AS views,
            SUM(CASE WHEN f.action = 'view' AND f.target = 1 AND {since_sql}
                THEN 1 ELSE 0 END) AS liked_views,
            SUM(CASE WHEN f.action = 'like' AND {since_sql} THEN 1 ELSE 0 END) AS likes,
            SUM(CASE WHEN f.action = 'like' AND NOT {since_sql} THEN 1 ELSE 0 END) AS pre_likes
        FROM feed_data f
        GROUP BY f.user_id
        ORDER BY f.user_id
    """)
    with connect(bind) as conn:
        rows = conn.execute(query, {"since": since}).all()
    values = np.array(rows, dtype=np.int64).reshape(-1, 5)
    values = values[values[:, 1] > 0]
    user, views, liked_views, likes, pre = values.T
    return UserTable(
        user_id=user,
        arm=np.zeros(user.size, dtype=np.int64),
        arms=("all",),
        exposures=views,
        hits=liked_views,
        shown=views,
        liked_shown=liked_views,
        likes=likes,
        pre_likes=pre,
    )
