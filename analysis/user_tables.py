"""The SQL that reduces an experiment's exposures and likes to per-user rows and per-(arm,
day) sums, in temporary tables and a few statements.

PostgreSQL, for one range of days of the experiment (``Days``; several ranges can be read
by several sessions at once):

1. ``create_user_days``: per (user, arm, day), in one pass over the range's exposures
   (found through the BRIN index on their time): each meets its user's likes of the range
   as two arrays sorted by time (times and posts), built in the same statement so that
   they are never stored and read back; ``width_bucket`` finds by binary search the likes
   before the exposure, and only when the next one comes within the window are the
   exposure's first k posts compared with those liked;
2. ``user_sums``: per user, the sums over the range's days; ``daily_sums``: per (arm, day),
   the primary metric's sums over users.

SQLite, for small data, makes a table per user and one per (user, arm, day) directly
(``create_sqlite``), pairing exposures with the likes of their time bucket.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

USER_DAYS = "feedlab_analysis_user_days"
USERS = "feedlab_analysis_users"
_EXPOSURE_DAYS = "feedlab_analysis_exposure_days"
_HITS = "feedlab_analysis_hits"
_PER_USER = "feedlab_analysis_per_user"
SQLITE_TABLES = (USERS, _PER_USER, USER_DAYS, _HITS, _EXPOSURE_DAYS)

BUCKET_WINDOWS = 4
"""SQLite: time buckets for matching likes with exposures are this many windows wide:
wider buckets offer an exposure more likes to check, narrower ones repeat more likes."""

_EXPOSURES = "exposures e WHERE e.experiment = :experiment AND NOT e.forced"
_DAILY_SUMS = """COUNT(*), SUM(CAST(hits AS BIGINT)), SUM(CAST(hits AS BIGINT) * hits),
    SUM(CAST(exposures AS BIGINT)), SUM(CAST(exposures AS BIGINT) * exposures),
    SUM(CAST(hits AS BIGINT) * exposures)"""
"""Per (arm, day): users, and the sums of the primary metric (``SampleRatio``)."""


@dataclass(frozen=True)
class Days:
    """The exposures from ``start`` (a midnight) to ``stop`` (the next range's, None for the
    last), and the likes that can follow them: up to ``stop`` plus the window, and for the
    last range up to ``end`` (the experiment's last exposure plus the window)."""

    index: int
    start: datetime
    stop: datetime | None
    end: datetime

    @property
    def table(self) -> str:
        return f"{USER_DAYS}_{self.index}"


@contextmanager
def _settings(conn: Connection, **values: str) -> Iterator[None]:
    """PostgreSQL settings for the statements inside, then back as they were."""
    before = {name: conn.execute(text(f"SHOW {name}")).scalar_one() for name in values}
    for name, value in values.items():
        conn.execute(text(f"SET LOCAL {name} = '{value}'"))
    yield
    for name, value in before.items():
        conn.execute(text(f"SET LOCAL {name} = '{value}'"))


def create_user_days(conn: Connection, params: dict[str, Any], days: Days) -> None:
    """The temporary table ``days.table``: per (user, arm, day) of the range, exposures,
    shown posts, hits, shown posts liked within the window, first and last exposure
    (epoch microseconds), and the user's likes from ``days.start`` to the day's first
    exposure (``likes_before``; the smallest is the user's). ``params``: experiment,
    window, k."""
    last = days.stop is None
    params = {**params, "start": days.start, "stop": days.stop, "end": days.end}
    # JIT compilation costs most of a second at any size; merge joins and loops over an
    # index per row never pay here. The likes' arrays come from one sort (the per-user
    # index would read the table in random order), the groups from a hash table, which
    # the planner would judge too big (it guesses a group per ten exposures) and sort
    # instead. Parallel workers would each sort all the likes again: sessions reading
    # other ranges are the parallelism.
    settings = {"jit": "off", "enable_mergejoin": "off", "enable_nestloop": "off"}
    settings |= {"work_mem": "64MB", "enable_indexscan": "off", "hash_mem_multiplier": "8"}
    with _settings(conn, **settings, max_parallel_workers_per_gather="0"):
        conn.execute(text(f"DROP TABLE IF EXISTS {days.table}"))
        conn.execute(text(_user_days_sql(int(params["k"]), days.table, last)), params)
        conn.execute(text(f"ANALYZE {days.table}"))


def _user_days_sql(k: int, table: str, last: bool) -> str:
    """A like at s counts for an exposure at t when t <= s <= t + window. The inner layers
    are computed once per row (OFFSET 0 keeps the planner from copying their expressions
    into the next): ``before`` counts the user's likes of the range before t; when the
    next one comes by t + window, ``liked`` is the posts liked up to then and ``first_k``
    the exposure's first k posts. A shown post counts once however often it was liked,
    and as often as it was shown among the first k. The list "[3644 4529 4704]" has single
    spaces and is ASCII, so its posts are counted in bytes (constant time)."""
    liked_shown = " + ".join(
        f"CASE WHEN first_k[{i}] = ANY(liked) THEN 1 ELSE 0 END" for i in range(1, k + 1)
    )
    window_end = "request_time + make_interval(secs => :window)"
    followed = f"times[before + 1] <= {window_end}"
    posts = "octet_length(e.post_ids) - octet_length(REPLACE(e.post_ids, ' ', '')) + 1"
    micros = "CAST(EXTRACT(EPOCH FROM {}) * 1000000 AS BIGINT)"
    until = (
        "CAST(:end AS TIMESTAMP)"
        if last
        else "CAST(:stop AS TIMESTAMP) + make_interval(secs => :window)"
    )
    stop = "" if last else "AND e.request_time < CAST(:stop AS TIMESTAMP)"
    return f"""
        CREATE TEMPORARY TABLE {table} AS
        SELECT user_id, arm, day, COUNT(*) AS exposures, SUM(shown) AS shown,
            COUNT(*) FILTER (WHERE liked && first_k) AS hits,
            SUM(CASE WHEN liked && first_k THEN {liked_shown} ELSE 0 END) AS liked_shown,
            {micros.format("MIN(request_time)")} AS first_seen,
            {micros.format("MAX(request_time)")} AS last_seen, MIN(before) AS likes_before
        FROM (
            SELECT user_id, arm, day, request_time, shown, before,
                CASE WHEN {followed}
                    THEN posts[before + 1:width_bucket({window_end}, times)] END AS liked,
                CASE WHEN {followed}
                    THEN (string_to_array(btrim(post_ids, '[]'), ' '))[1:{k}] END AS first_k
            FROM (
                SELECT e.user_id, e.arm, CAST(e.request_time AS DATE) AS day,
                    e.request_time, e.post_ids,
                    CASE WHEN e.post_ids = '[]' THEN 0 ELSE LEAST({posts}, :k) END AS shown,
                    COALESCE(width_bucket(e.request_time - INTERVAL '1 microsecond', l.times),
                        0) AS before,
                    l.times, l.posts
                FROM exposures e
                LEFT JOIN (
                    SELECT f.user_id, array_agg(f.timestamp ORDER BY f.timestamp) AS times,
                        array_agg(CAST(f.post_id AS TEXT) ORDER BY f.timestamp) AS posts
                    FROM feed_data f
                    WHERE f.action = 'like' AND f.timestamp >= CAST(:start AS TIMESTAMP)
                        AND f.timestamp <= {until}
                    GROUP BY f.user_id
                ) l ON l.user_id = e.user_id
                WHERE e.experiment = :experiment AND NOT e.forced
                    AND e.request_time >= CAST(:start AS TIMESTAMP) {stop}
                OFFSET 0
            ) counted
            OFFSET 0
        ) sliced
        GROUP BY user_id, arm, day
        """


USER_SUM_COLUMNS = [
    "user_id", "arm_min", "arm_max", "exposures", "hits", "shown", "liked_shown",
    "likes_before", "first_seen", "last_seen",
]  # fmt: skip


def user_sums(days: Days) -> str:
    """SQL for ``USER_SUM_COLUMNS``: per user, the sums over the range's days."""
    return f"""
        SELECT user_id, MIN(arm), MAX(arm), SUM(exposures), SUM(hits), SUM(shown),
            SUM(liked_shown), MIN(likes_before), MIN(first_seen), MAX(last_seen)
        FROM {days.table} GROUP BY user_id"""


def daily_sums(conn: Connection, days: Days, crossover: Sequence[int]) -> list[Any]:
    """Per (day, arm) of the range, the users' ``_DAILY_SUMS``, crossover users left out."""
    return list(
        conn.execute(
            text(f"""
            SELECT CAST(day AS TEXT), arm, {_DAILY_SUMS} FROM {days.table}
            WHERE NOT user_id = ANY(CAST(:crossover AS INTEGER[]))
            GROUP BY arm, day
            """),
            {"crossover": list(crossover)},
        ).all()
    )


def create_sqlite(conn: Connection, params: dict[str, Any]) -> None:
    """``USER_DAYS`` and ``USERS`` on SQLite."""
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {_EXPOSURE_DAYS} AS
        SELECT e.user_id, e.arm, date(e.request_time) AS day, COUNT(*) AS exposures,
            SUM({_SQLITE_SHOWN}) AS shown,
            MIN(e.request_time) AS first_seen, MAX(e.request_time) AS last_seen
        FROM {_EXPOSURES}
        GROUP BY e.user_id, e.arm, date(e.request_time)
        """),
        params,
    )
    first_seen, last_end = conn.execute(
        text(
            f"SELECT MIN(first_seen), {_sqlite_window_end('MAX(last_seen)')} FROM {_EXPOSURE_DAYS}"
        ),
        params,
    ).one()
    # bound back as read, so that SQLite compares its text timestamps like with like
    params = {
        **params,
        "first_seen": first_seen,
        "last_end": last_end,
        "bucket_s": BUCKET_WINDOWS * max(int(params["window"]), 1),
    }
    _sqlite_hits(conn, params)
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {USER_DAYS} AS
        SELECT d.user_id, d.arm, d.day, d.exposures, d.shown, COALESCE(h.hits, 0) AS hits,
            COALESCE(h.liked_shown, 0) AS liked_shown, d.first_seen, d.last_seen
        FROM {_EXPOSURE_DAYS} d
        LEFT JOIN {_HITS} h ON h.user_id = d.user_id AND h.arm = d.arm AND h.day = d.day
        """)
    )
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {_PER_USER} AS
        SELECT user_id, MIN(arm) AS arm, CASE WHEN MIN(arm) = MAX(arm) THEN 1 ELSE 2 END AS arms,
            SUM(exposures) AS exposures, SUM(hits) AS hits, SUM(shown) AS shown,
            SUM(liked_shown) AS liked_shown, MIN(first_seen) AS first_seen,
            MAX(last_seen) AS last_seen
        FROM {USER_DAYS}
        GROUP BY user_id
        """)
    )
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {USERS} AS
        WITH user_likes AS (
            SELECT u.user_id,
                SUM(CASE WHEN f.timestamp < u.first_seen THEN 1 ELSE 0 END) AS pre_likes,
                SUM(CASE WHEN f.timestamp >= u.first_seen AND f.timestamp <= :last_end
                    THEN 1 ELSE 0 END) AS likes
            FROM {_PER_USER} u
            JOIN feed_data f ON f.user_id = u.user_id AND f.action = 'like'
            GROUP BY u.user_id
        )
        SELECT u.user_id, u.arm, u.arms, u.exposures, u.hits, u.shown, u.liked_shown,
            COALESCE(l.likes, 0) AS likes,
            CASE WHEN COALESCE(l.likes, 0) > 0 THEN 1 ELSE 0 END AS liked,
            COALESCE(l.pre_likes, 0) AS pre_likes, u.first_seen, u.last_seen
        FROM {_PER_USER} u LEFT JOIN user_likes l ON l.user_id = u.user_id
        """),
        {"last_end": last_end},
    )


_SQLITE_POSTS = "length(e.post_ids) - length(REPLACE(e.post_ids, ' ', '')) + 1"
_SQLITE_SHOWN = (
    f"CASE WHEN e.post_ids = '[]' THEN 0 WHEN {_SQLITE_POSTS} > :k THEN :k ELSE {_SQLITE_POSTS} END"
)
"""The posts of the text list "[3644 4529 4704]" of exposure ``e``, at most :k."""


def _sqlite_window_end(column: str) -> str:
    """SQL for ``column`` + :window seconds, comparable with stored timestamps."""
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime's %f
    # gives milliseconds, so pad to microseconds to compare as text.
    return f"(strftime('%Y-%m-%d %H:%M:%f', {column}, '+' || :window || ' seconds') || '000')"


def _sqlite_bucket(column: str, minus_window: bool = False) -> str:
    """SQL for the :bucket_s-second time bucket holding ``column`` (or ``column`` minus
    the window): any value that is equal for two times exactly when they share a bucket."""
    seconds = f"CAST(strftime('%s', {column}) AS INTEGER)"
    return f"(({seconds}{' - :window' if minus_window else ''}) / :bucket_s)"


def _sqlite_hits(conn: Connection, params: dict[str, Any]) -> None:
    """Per (user, arm, day): exposures followed by a like of a shown post within the
    window, and how many shown posts were so liked.

    A like at s counts for an exposure at t when t <= s <= t + window. Joining on (user,
    time bucket), with buckets at least a window wide, pairs an exposure only with likes
    of its own bucket: each like is offered under its bucket and, when different, under
    the bucket of s - window. The few pairs left are checked against the window and the
    shown posts (``exposure_posts``).
    """
    likes = """feed_data f WHERE f.action = 'like'
        AND f.timestamp >= :first_seen AND f.timestamp <= :last_end"""
    conn.execute(
        text(f"""
        CREATE TEMPORARY TABLE {_HITS} AS
        WITH likes AS (
            SELECT f.user_id, f.post_id, f.timestamp, {_sqlite_bucket("f.timestamp")} AS bucket
            FROM {likes}
            UNION ALL
            SELECT f.user_id, f.post_id, f.timestamp, {_sqlite_bucket("f.timestamp", True)}
            FROM {likes}
                AND {_sqlite_bucket("f.timestamp", True)} <> {_sqlite_bucket("f.timestamp")}
        ),
        liked AS (
            -- (exposure, post) pairs liked within the window, once however often liked
            SELECT DISTINCT e.request_id AS exposure, e.user_id, e.arm, e.request_time,
                l.post_id, (SELECT COUNT(*) FROM exposure_posts p
                    WHERE p.request_id = e.request_id AND p.position < :k
                    AND p.post_id = l.post_id) AS liked_shown
            FROM exposures e
            JOIN likes l ON l.user_id = e.user_id
                AND l.bucket = {_sqlite_bucket("e.request_time")}
                AND l.timestamp >= e.request_time
                AND l.timestamp <= {_sqlite_window_end("e.request_time")}
            WHERE e.experiment = :experiment AND NOT e.forced
        ),
        per_request AS (
            SELECT user_id, arm, request_time, SUM(liked_shown) AS liked_shown
            FROM liked WHERE liked_shown > 0
            GROUP BY exposure, user_id, arm, request_time
        )
        SELECT user_id, arm, date(request_time) AS day, COUNT(*) AS hits,
            SUM(liked_shown) AS liked_shown
        FROM per_request
        GROUP BY user_id, arm, date(request_time)
        """),
        params,
    )


def sqlite_daily_sums(conn: Connection) -> list[Any]:
    """SQLite: per (day, arm), the users' ``_DAILY_SUMS``, crossover users left out."""
    return list(
        conn.execute(
            text(f"""
            SELECT day, arm, {_DAILY_SUMS} FROM {USER_DAYS}
            WHERE user_id NOT IN (SELECT user_id FROM {USERS} WHERE arms > 1)
            GROUP BY arm, day
            """)
        ).all()
    )
