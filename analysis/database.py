"""The service's own database as the analysis input, aggregated in SQL.

``analysis.user_tables`` reduces the experiment's exposures and likes to one row per user
and per-(arm, day) sums; only those come back, and the per-arm sums of
``analysis.data.moment_terms()`` (n, sums, sums of squares and cross-products) are taken
over the users here. Forced (QA) assignments are not randomised and are left out. Works
on PostgreSQL and SQLite; times are naive UTC as everywhere in feedlab.

On PostgreSQL the days of the experiment (from its first to its last exposure) are cut
into ranges, one per session: given an engine, the sessions read at once, all of them one
snapshot (``pg_export_snapshot``, as ``pg_dump --jobs`` does), while this one counts each
user's likes before the experiment and in each range. A user's likes before the first
exposure (the CUPED covariate) are those before the experiment, in the ranges before the
first exposure's, and in that range before it; users seen in several arms, in whichever
ranges, are left out of every sum. The per-user rows come back through COPY, as CSV
parsed by pandas, rather than as one Python object per value.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from analysis.data import ArmStats, DailyStats, ExperimentData, UserTable, order_arms
from analysis.sufficient import SampleRatio
from analysis.user_tables import (
    SQLITE_TABLES,
    USER_SUM_COLUMNS,
    USERS,
    Days,
    create_sqlite,
    create_user_days,
    daily_sums,
    sqlite_daily_sums,
    user_sums,
)
from feeddata.db import Bind, connect, is_postgres

MAX_SESSIONS = 4
SHARED_FROM_EXPOSURES = 200_000
"""Smaller experiments are read in one session: more would cost more than they save."""

_EPOCH = datetime(1970, 1, 1)
_EXPOSURES = "exposures e WHERE e.experiment = :experiment AND NOT e.forced"
_USER_COLUMNS = ["exposures", "hits", "shown", "liked_shown", "likes", "pre_likes"]
_FRAME_COLUMNS = ["user_id", "arm", "crossover", *_USER_COLUMNS, "first_seen", "last_seen"]
"""Per user: the arm (the smallest when several), whether several, the per-user columns
of ``analysis.data`` but ``liked``, first and last exposure (epoch microseconds)."""


def read_experiment(
    *,
    bind: Bind,
    experiment: str,
    window: int = 3600,
    k: int = 5,
    user_rows: bool = True,
    sessions: int | None = None,
) -> ExperimentData:
    """The experiment's per-arm sufficient statistics, daily statistics and health facts,
    aggregated in SQL; per-user rows too when ``user_rows`` (for the bootstrap, Mann-Whitney
    and the likes histogram; a few integers per user, never the raw logs).

    ``sessions``: PostgreSQL sessions reading ranges of days at once. By default one more
    than the server's ``max_parallel_workers_per_gather`` (at most ``MAX_SESSIONS``) for an
    engine and a large experiment, else one; on a connection they take turns.
    """
    if window < 0 or k < 1:
        raise ValueError(f"window must be >= 0 and k >= 1, got window={window}, k={k}")
    if sessions is not None and sessions < 1:
        raise ValueError(f"sessions must be at least 1, got {sessions}")
    params = {"experiment": experiment, "window": window, "k": k}
    with connect(bind) as conn:
        source = f"database {conn.engine.url.render_as_string(hide_password=True)}"
        if is_postgres(conn):
            users, daily = _read_postgres(bind, conn, params, sessions)
        else:
            users, daily = _read_sqlite(conn, params)
    return _experiment_data(users, daily, source, experiment, user_rows)


def _read_postgres(
    bind: Bind, conn: Connection, params: dict[str, Any], sessions: int | None
) -> tuple[pd.DataFrame, list[Any]]:
    if isinstance(bind, Engine):  # the snapshot other sessions import is this transaction's
        conn.execution_options(isolation_level="REPEATABLE READ")
    first, last, exposures = conn.execute(
        text(f"SELECT MIN(e.request_time), MAX(e.request_time), COUNT(*) FROM {_EXPOSURES}"),
        params,
    ).one()
    if first is None:
        empty = pd.DataFrame({c: pd.Series(dtype=np.int64) for c in _FRAME_COLUMNS})
        return empty.astype({"arm": str, "crossover": bool}), []
    if sessions is None:
        large = isinstance(bind, Engine) and exposures >= SHARED_FROM_EXPOSURES
        sessions = _default_sessions(conn) if large else 1
    ranges = _day_ranges(first, last, timedelta(seconds=params["window"]), sessions)
    opened: list[tuple[Connection, pd.DataFrame]] = []
    with ExitStack() as stack:
        if isinstance(bind, Engine) and len(ranges) > 1:
            opened, likes = _read_at_once(bind, conn, params, ranges, stack)
        else:
            for days in ranges:
                stack.callback(conn.execute, text(f"DROP TABLE IF EXISTS {days.table}"))
                opened.append((conn, _user_sums(conn, params, days)))
            likes = _likes(conn, params, ranges)
        frame = _user_frame([users for _, users in opened], likes)
        # the days' sums leave out users seen in several arms, in whichever range
        crossover = frame["user_id"][frame["crossover"]].tolist()
        daily = [
            row
            for (session, _), days in zip(opened, ranges, strict=True)
            for row in daily_sums(session, days, crossover)
        ]
    return frame, daily


def _default_sessions(conn: Connection) -> int:
    workers = int(conn.execute(text("SHOW max_parallel_workers_per_gather")).scalar_one())
    return max(1, min(MAX_SESSIONS, workers + 1))


def _day_ranges(first: datetime, last: datetime, window: timedelta, sessions: int) -> list[Days]:
    """The days from the first exposure's to the last's in at most ``sessions`` ranges of
    whole days, as even as days allow."""
    start = datetime(first.year, first.month, first.day)
    days = (last.date() - first.date()).days + 1
    count = min(sessions, days)
    bounds = [start + timedelta(days=round(i * days / count)) for i in range(count)]
    stops: list[datetime | None] = [*bounds[1:], None]
    return [
        Days(i, bound, stop, last + window)
        for i, (bound, stop) in enumerate(zip(bounds, stops, strict=True))
    ]


def _read_at_once(
    engine: Engine,
    conn: Connection,
    params: dict[str, Any],
    ranges: list[Days],
    stack: ExitStack,
) -> tuple[list[tuple[Connection, pd.DataFrame]], pd.DataFrame]:
    """Each range's session and per-user sums, read by sessions at once in this one's
    snapshot, and the likes, which this one counts meanwhile."""
    snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    with ThreadPoolExecutor(len(ranges), thread_name_prefix="feedlab-report") as pool:
        futures = [pool.submit(_open_session, engine, snapshot) for _ in ranges]
        sessions, errors = [], []
        for future in futures:
            try:
                sessions.append(future.result())
            except Exception as error:  # the others are still closed
                errors.append(error)
            else:  # rolling back drops the session's temporary table
                stack.callback(sessions[-1].close)
        if errors:
            raise errors[0]
        reads = [
            pool.submit(_user_sums, session, params, days)
            for session, days in zip(sessions, ranges, strict=True)
        ]
        likes = _likes(conn, params, ranges)
        return list(zip(sessions, [read.result() for read in reads], strict=True)), likes


def _open_session(engine: Engine, snapshot: str) -> Connection:
    conn = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    conn.execute(text("SET TRANSACTION SNAPSHOT :snapshot"), {"snapshot": snapshot})
    return conn


def _user_sums(conn: Connection, params: dict[str, Any], days: Days) -> pd.DataFrame:
    """The range's table of (user, arm, day) rows and its per-user sums."""
    create_user_days(conn, params, days)
    users = _copy_rows(conn, user_sums(days), USER_SUM_COLUMNS)
    return users.assign(range=days.index)


def _likes(conn: Connection, params: dict[str, Any], ranges: list[Days]) -> pd.DataFrame:
    """Per user with likes, those before the first range (column ``before``) and those in
    each range (columns ``0``, ``1``, ...; the last up to its end)."""
    in_range = [
        f"COUNT(*) FILTER (WHERE f.timestamp >= CAST(:start_{d.index} AS TIMESTAMP)"
        + ("" if d.stop is None else f" AND f.timestamp < CAST(:stop_{d.index} AS TIMESTAMP)")
        + ")"
        for d in ranges
    ]
    query = f"""
        SELECT f.user_id, COUNT(*) FILTER (WHERE f.timestamp < CAST(:start_0 AS TIMESTAMP)),
            {", ".join(in_range)}
        FROM feed_data f
        WHERE f.action = 'like' AND f.timestamp <= CAST(:end AS TIMESTAMP)
        GROUP BY f.user_id"""
    values: dict[str, Any] = {"end": ranges[0].end}
    for d in ranges:
        values |= {f"start_{d.index}": d.start, f"stop_{d.index}": d.stop}
    # bound by the driver, as COPY takes no parameters
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        sql = cursor.mogrify(text(query).compile(conn).string, values).decode()
    finally:
        cursor.close()
    names = ["user_id", "before", *(str(d.index) for d in ranges)]
    return _copy_rows(conn, sql, names).set_index("user_id")


def _user_frame(parts: list[pd.DataFrame], likes: pd.DataFrame) -> pd.DataFrame:
    """``_FRAME_COLUMNS`` from the ranges' per-user sums and the per-user likes."""
    rows = pd.concat(parts).sort_values(["user_id", "range"])
    by_user = rows.groupby("user_id", sort=True)
    frame = by_user.agg(
        arm=("arm_min", "min"),
        arm_max=("arm_max", "max"),
        exposures=("exposures", "sum"),
        hits=("hits", "sum"),
        shown=("shown", "sum"),
        liked_shown=("liked_shown", "sum"),
        first_seen=("first_seen", "min"),
        last_seen=("last_seen", "max"),
    )
    firsts = by_user.first()  # the first range with an exposure: its likes before it
    counts = likes.reindex(frame.index, fill_value=0).to_numpy(np.int64)
    in_ranges = counts[:, 1:]
    before_range = np.cumsum(in_ranges, axis=1) - in_ranges
    first_range = firsts["range"].to_numpy(np.int64)
    pre_likes = (
        counts[:, 0]
        + before_range[np.arange(len(frame)), first_range]
        + firsts["likes_before"].to_numpy(np.int64)
    )
    frame["pre_likes"] = pre_likes
    frame["likes"] = counts.sum(axis=1) - pre_likes
    frame["crossover"] = frame["arm"] != frame.pop("arm_max")
    return frame.reset_index()[_FRAME_COLUMNS]


def _read_sqlite(conn: Connection, params: dict[str, Any]) -> tuple[pd.DataFrame, list[Any]]:
    for table in SQLITE_TABLES:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    try:
        create_sqlite(conn, params)
        rows = conn.execute(
            text(f"""
            SELECT user_id, arm, arms > 1, exposures, hits, shown, liked_shown, likes,
                pre_likes, first_seen, last_seen
            FROM {USERS}
            """)
        ).all()
        daily = sqlite_daily_sums(conn)
    finally:
        for table in SQLITE_TABLES:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    frame = pd.DataFrame.from_records(rows, columns=_FRAME_COLUMNS)
    for column in ("first_seen", "last_seen"):
        frame[column] = [_micros(value) for value in frame[column]]
    return frame.astype({"crossover": bool}), daily


def _experiment_data(
    frame: pd.DataFrame, daily: list[Any], source: str, experiment: str, user_rows: bool
) -> ExperimentData:
    analysed = frame[~frame["crossover"].astype(bool)].sort_values("user_id", kind="stable")
    arms = order_arms([str(a) for a in analysed["arm"].unique()])
    users = _user_table(analysed, arms)
    moments = users.moments()
    return ExperimentData(
        source=source,
        experiment=experiment,
        arms=arms,
        arm_stats={arm: ArmStats.from_moments(arm, moments[arm]) for arm in arms},
        daily=tuple(
            DailyStats(day=str(day)[:10], arm=arm, stat=SampleRatio(int(n), *_floats(sums)))
            for day, arm, n, *sums in sorted(daily, key=lambda row: (str(row[0])[:10], row[1]))
        ),
        crossover_users=tuple(sorted(int(u) for u in frame["user_id"][frame["crossover"]])),
        users_seen=len(frame),
        exposures=int(users.exposures.sum()),
        likes=int((users.likes + users.pre_likes).sum()),
        time_range=(
            (int(analysed["first_seen"].min()) // 10**6, int(analysed["last_seen"].max()) // 10**6)
            if len(analysed)
            else None
        ),
        users=users if user_rows else None,
    )


def _floats(values: list[Any]) -> list[float]:
    return [float(v or 0) for v in values]


def _user_table(frame: pd.DataFrame, arms: tuple[str, ...]) -> UserTable:
    codes = pd.Categorical(frame["arm"].astype(str), categories=list(arms)).codes
    values = {c: frame[c].to_numpy(np.int64) for c in ["user_id", *_USER_COLUMNS]}
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
    text_columns = {"arm_min": str, "arm_max": str}
    return pd.read_csv(buffer, names=names, dtype=text_columns, keep_default_na=False)


def _micros(value: datetime | str) -> int:
    if isinstance(value, str):  # SQLite returns text from aggregates over temp tables
        value = datetime.fromisoformat(value)
    return (value - _EPOCH) // timedelta(microseconds=1)


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
