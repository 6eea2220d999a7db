"""The service's own database as the analysis input, aggregated in SQL.

Exposures (``exposures`` and ``exposure_posts``, see ``feeddata.schema``) are joined with
the likes of ``feed_data`` in the database; only per-user rows and per-arm sums come back:

1. per (user, arm, UTC day): exposures, hits, posts shown and liked within the window,
   first exposure, into a temporary table (one pass over the exposures);
2. per user: the counts summed over days, the number of arms seen (crossover users have
   more than one), and the user's likes before the first exposure (the CUPED covariate)
   and from it to the end of the experiment, into a second temporary table;
3. per arm: every sum of ``analysis.data.moment_terms()`` (n, sums, sums of squares and
   cross-products), and per (arm, day) the primary metric's sums.

Forced (QA) assignments are not randomised and are left out. Works on PostgreSQL and
SQLite; times are naive UTC as everywhere in feedlab.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
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
USERS = "feedlab_analysis_users"


def _window_end(conn: Connection, column: str) -> str:
    """SQL for ``column`` + :window seconds, comparable with stored timestamps."""
    if is_postgres(conn):
        return f"{column} + make_interval(secs => :window)"
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime's %f
    # gives milliseconds, so pad to microseconds to compare as text.
    return f"(strftime('%Y-%m-%d %H:%M:%f', {column}, '+' || :window || ' seconds') || '000')"


def _day(conn: Connection, column: str) -> str:
    return f"CAST({column} AS DATE)" if is_postgres(conn) else f"date({column})"


def _bucket(conn: Connection, column: str) -> str:
    """SQL for the number of the :bucket_s-second interval (from 1970) holding ``column``."""
    if is_postgres(conn):
        return f"CAST(floor(date_part('epoch', {column}) / :bucket_s) AS BIGINT)"
    return f"(CAST(strftime('%s', {column}) AS INTEGER) / :bucket_s)"


def _times_shown(conn: Connection) -> str:
    """SQL for how often the liked post ``l.post_id`` is among the first :k posts of the
    exposure ``e``: its text list on PostgreSQL (no join), ``exposure_posts`` on SQLite."""
    if is_postgres(conn):
        first_k = "(string_to_array(btrim(e.post_ids, '[]'), ' '))[1:CAST(:k AS INTEGER)]"
        return f"cardinality(array_positions({first_k}, CAST(l.post_id AS TEXT)))"
    return (
        "(SELECT COUNT(*) FROM exposure_posts p WHERE p.request_id = e.request_id "
        "AND p.position < :k AND p.post_id = l.post_id)"
    )


# Posts in the text list "[3644 4529 4704]" (single spaces, "[]" when none), at most k.
_SHOWN = """CASE WHEN e.post_ids = '[]' THEN 0
    WHEN LENGTH(e.post_ids) - LENGTH(REPLACE(e.post_ids, ' ', '')) + 1 > :k THEN :k
    ELSE LENGTH(e.post_ids) - LENGTH(REPLACE(e.post_ids, ' ', '')) + 1 END"""


def _create_temp_tables(conn: Connection, params: dict[str, Any]) -> None:
    if is_postgres(conn):
        # the planner cannot estimate these joins well and JIT-compiles them for most of a
        # second at any size; more sort and hash memory keeps the aggregation off disk
        conn.execute(text("SET LOCAL jit = off"))
        conn.execute(text("SET LOCAL work_mem = '64MB'"))
    for table in (USERS, USER_DAYS):
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    # A like at s is a hit of an exposure at t when t <= s <= t + window and its post was
    # among the exposure's first k. Joining exposures with likes on the user alone pairs
    # every exposure with every like of its user; joining on (user, time bucket) with
    # buckets at least a window wide pairs it only with likes in its bucket or the next,
    # so each like is offered under its own bucket and the one before. The few pairs
    # left are checked against the shown posts.
    bucket_s = max(int(params["window"]), 1)
    window_end = _window_end(conn, "e.request_time")
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {USER_DAYS} AS
        WITH likes AS (
            SELECT f.user_id, f.post_id, f.timestamp, {_bucket(conn, "f.timestamp")} - o.d AS bucket
            FROM feed_data f CROSS JOIN (SELECT 0 AS d UNION ALL SELECT 1 AS d) o
            WHERE f.action = 'like'
        ),
        liked AS (
            -- (exposure, post) pairs liked within the window, once however often liked
            SELECT DISTINCT e.request_id, e.user_id, e.arm, e.request_time, l.post_id,
                {_times_shown(conn)} AS liked_shown
            FROM exposures e
            JOIN likes l ON l.user_id = e.user_id AND l.bucket = {_bucket(conn, "e.request_time")}
                AND l.timestamp >= e.request_time AND l.timestamp <= {window_end}
            WHERE e.experiment = :experiment AND NOT e.forced
        ),
        per_request AS (
            SELECT user_id, arm, request_time, 0 AS exposures, 1 AS hits, 0 AS shown,
                SUM(liked_shown) AS liked_shown
            FROM liked WHERE liked_shown > 0
            GROUP BY request_id, user_id, arm, request_time
            UNION ALL
            SELECT e.user_id, e.arm, e.request_time, 1, 0, {_SHOWN}, 0
            FROM exposures e
            WHERE e.experiment = :experiment AND NOT e.forced
        )
        SELECT user_id, arm, {_day(conn, "request_time")} AS day,
            SUM(exposures) AS exposures,
            SUM(hits) AS hits,
            SUM(shown) AS shown,
            SUM(liked_shown) AS liked_shown,
            MIN(request_time) AS first_seen,
            MAX(request_time) AS last_seen
        FROM per_request
        GROUP BY user_id, arm, {_day(conn, "request_time")}
        """),
        {**params, "bucket_s": bucket_s},
    )
    end = _window_end(conn, f"(SELECT MAX(last_seen) FROM {USER_DAYS})")
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {USERS} AS
        WITH per_user AS (
            SELECT user_id, MIN(arm) AS arm, COUNT(DISTINCT arm) AS arms,
                SUM(exposures) AS exposures, SUM(hits) AS hits, SUM(shown) AS shown,
                SUM(liked_shown) AS liked_shown, MIN(first_seen) AS first_seen
            FROM {USER_DAYS} GROUP BY user_id
        ),
        user_likes AS (
            SELECT u.user_id,
                SUM(CASE WHEN f.timestamp < u.first_seen THEN 1 ELSE 0 END) AS pre_likes,
                SUM(CASE WHEN f.timestamp >= u.first_seen AND f.timestamp <= {end}
                    THEN 1 ELSE 0 END) AS likes
            FROM per_user u
            JOIN feed_data f ON f.user_id = u.user_id AND f.action = 'like'
            GROUP BY u.user_id
        )
        SELECT u.user_id, u.arm, u.arms, u.exposures, u.hits, u.shown, u.liked_shown,
            COALESCE(l.likes, 0) AS likes,
            CASE WHEN COALESCE(l.likes, 0) > 0 THEN 1 ELSE 0 END AS liked,
            COALESCE(l.pre_likes, 0) AS pre_likes
        FROM per_user u LEFT JOIN user_likes l ON l.user_id = u.user_id
        """),
        params,
    )


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
            for table in (USERS, USER_DAYS):
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
    seen, likes = conn.execute(
        text(
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN arms = 1 THEN likes + pre_likes END), 0) "
            f"FROM {USERS}"
        )
    ).one()
    first, last = conn.execute(
        text(
            f"SELECT MIN(d.first_seen), MAX(d.last_seen) FROM {USER_DAYS} d "
            f"JOIN {USERS} u ON u.user_id = d.user_id WHERE u.arms = 1"
        )
    ).one()
    daily_rows = conn.execute(
        text(f"""
        SELECT d.arm, d.day, COUNT(*) AS n,
            SUM(CAST(d.hits AS BIGINT)), SUM(CAST(d.hits AS BIGINT) * d.hits),
            SUM(CAST(d.exposures AS BIGINT)), SUM(CAST(d.exposures AS BIGINT) * d.exposures),
            SUM(CAST(d.hits AS BIGINT) * d.exposures)
        FROM {USER_DAYS} d JOIN {USERS} u ON u.user_id = d.user_id
        WHERE u.arms = 1
        GROUP BY d.arm, d.day ORDER BY d.day, d.arm
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
    result = conn.execute(
        text(f"SELECT user_id, arm, {', '.join(columns)} FROM {USERS} WHERE arms = 1 ORDER BY 1")
    )
    rows = result.all()
    arm_index = {arm: i for i, arm in enumerate(arms)}
    if rows:
        values = np.array([[r[0], arm_index[r[1]], *r[2:]] for r in rows], dtype=np.int64)
    else:
        values = np.zeros((0, len(columns) + 2), dtype=np.int64)
    named = dict(zip(["user_id", "arm", *columns], values.T, strict=True))
    return UserTable(arms=arms, **named)


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
