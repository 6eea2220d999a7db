"""The course's log files reduced to per-user rows, vectorised with numpy and pandas.

``views.csv``: user_id, exp_group, recommendations (``"[3644 4529 4704 5294 4808]"``),
timestamp (unix seconds); one row per recommendation event. ``likes.csv``: user_id,
post_id, timestamp. An event is a hit when its user liked one of its first k posts at a
time in [t, t + window] (SPEC.md, hitrate@k).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from analysis.data import ArmStats, DailyStats, ExperimentData, UserTable, order_arms
from analysis.sufficient import SampleRatio

VIEW_COLUMNS = ("user_id", "exp_group", "recommendations", "timestamp")
LIKE_COLUMNS = ("user_id", "post_id", "timestamp")
DAY = 86_400
_SEPARATORS = str.maketrans("[],", "   ")
_NUMBERS = re.compile(r"[\s\d]*")


def _read(path: Path, columns: tuple[str, ...], dtypes: dict[str, str]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    frame = pd.read_csv(path, dtype=dtypes)
    if missing := [c for c in columns if c not in frame.columns]:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}"
        )
    for column in columns:
        if frame[column].isna().any():
            row = int(np.flatnonzero(frame[column].isna().to_numpy())[0]) + 2
            raise ValueError(f"{path}: empty {column} at line {row}")
    return frame[list(columns)]


def read_views(path: Path) -> pd.DataFrame:
    """``views.csv`` with exp_group as text (labels such as control/test or 0/1)."""
    return _read(Path(path), VIEW_COLUMNS, {"exp_group": "string", "recommendations": "string"})


def read_likes(path: Path) -> pd.DataFrame:
    return _read(Path(path), LIKE_COLUMNS, {})


def parse_recommendations(column: pd.Series, k: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Flattened (event index, post id) of each event's first k posts.

    >>> events, posts = parse_recommendations(pd.Series(["[1 2 3]", "[4, 5]", "[]"]), k=2)
    >>> events.tolist(), posts.tolist()
    ([0, 0, 1, 1], [1, 2, 4, 5])
    """
    rows = column.astype(str).tolist()
    # one C-level parse of every row at once; -1 (never a post id) ends each row
    if not _NUMBERS.fullmatch(" ".join(rows).translate(_SEPARATORS)):
        bad = next(
            i for i, row in enumerate(rows) if not _NUMBERS.fullmatch(row.translate(_SEPARATORS))
        )
        raise ValueError(
            f"recommendations at data row {bad + 1}: {rows[bad]!r} is not a list of post ids "
            'like "[3644 4529 4704]"'
        )
    text = (" -1 ".join(rows) + " -1").translate(_SEPARATORS)
    values = np.fromstring(text, dtype=np.int64, sep=" ")
    ends = np.flatnonzero(values == -1)
    lengths = np.diff(ends, prepend=-1) - 1
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    events = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    posts = values[values != -1]
    keep = (np.arange(posts.size) - starts) < k
    return events[keep], posts[keep]


def reduce_logs(
    views: pd.DataFrame,
    likes: pd.DataFrame,
    *,
    window: int = 3600,
    k: int = 5,
    experiment: str = "",
    source: str = "files",
) -> ExperimentData:
    """Per-user rows, per-arm and daily sufficient statistics from the two logs."""
    if window < 0 or k < 1:
        raise ValueError(f"window must be >= 0 and k >= 1, got window={window}, k={k}")
    user = views["user_id"].to_numpy(np.int64)
    group = views["exp_group"].astype(str).to_numpy()
    time = views["timestamp"].to_numpy(np.int64)
    like_user = likes["user_id"].to_numpy(np.int64)
    like_post = likes["post_id"].to_numpy(np.int64)
    like_time = likes["timestamp"].to_numpy(np.int64)
    for name, ids in (
        ("views user_id", user),
        ("likes user_id", like_user),
        ("post_id", like_post),
    ):
        if ids.size and (ids.min() < 0 or ids.max() >= 2**31):
            raise ValueError(f"{name} must lie in 0..2^31-1, got {ids.min()}..{ids.max()}")

    # crossover: users whose events carry more than one arm
    arms_per_user = pd.Series(group).groupby(user).nunique()
    crossover = arms_per_user.index[arms_per_user.to_numpy() > 1].to_numpy(np.int64)
    users_seen = int(arms_per_user.size)
    keep = ~np.isin(user, crossover)
    user, group, time = user[keep], group[keep], time[keep]
    arms = order_arms(list(np.unique(group))) if group.size else ()

    event, post = parse_recommendations(views["recommendations"][keep].reset_index(drop=True), k)
    shown = np.bincount(event, minlength=user.size)
    liked_shown = _liked_shown(user, time, event, post, like_user, like_post, like_time, window)
    hit = (liked_shown > 0).astype(np.int64)

    user_index = pd.Index(np.unique(user))
    code = user_index.get_indexer(user)
    n_users = user_index.size
    arm_of_event = pd.Index(arms).get_indexer(pd.Index(group)) if arms else np.zeros(0, np.int64)
    arm_of_user = np.zeros(n_users, np.int64)
    arm_of_user[code] = arm_of_event
    first_seen = np.full(n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_seen, code, time)
    end = int(time.max()) + window if time.size else 0

    like_code = user_index.get_indexer(like_user)
    mine = like_code >= 0
    like_code, like_time_mine = like_code[mine], like_time[mine]
    before = like_time_mine < first_seen[like_code]
    during = ~before & (like_time_mine <= end)

    table = UserTable(
        user_id=user_index.to_numpy(np.int64),
        arm=arm_of_user,
        arms=arms,
        exposures=np.bincount(code, minlength=n_users),
        hits=np.bincount(code, weights=hit, minlength=n_users).astype(np.int64),
        shown=np.bincount(code, weights=shown, minlength=n_users).astype(np.int64),
        liked_shown=np.bincount(code, weights=liked_shown, minlength=n_users).astype(np.int64),
        likes=np.bincount(like_code[during], minlength=n_users),
        pre_likes=np.bincount(like_code[before], minlength=n_users),
    )
    moments = table.moments()
    return ExperimentData(
        source=source,
        experiment=experiment,
        arms=arms,
        arm_stats={arm: ArmStats.from_moments(arm, moments[arm]) for arm in arms},
        daily=_daily(code, arm_of_event, time, hit, arms),
        crossover_users=tuple(int(u) for u in crossover),
        users_seen=users_seen,
        exposures=int(user.size),
        likes=int(table.likes.sum() + table.pre_likes.sum()),
        time_range=(int(time.min()), int(time.max())) if time.size else None,
        users=table,
    )


def _liked_shown(
    user: NDArray[np.int64],
    time: NDArray[np.int64],
    event: NDArray[np.int64],
    post: NDArray[np.int64],
    like_user: NDArray[np.int64],
    like_post: NDArray[np.int64],
    like_time: NDArray[np.int64],
    window: int,
) -> NDArray[np.int64]:
    """Per event, how many of its shown posts its user liked within [t, t + window]."""
    # one int64 key per (user, post); only pairs that were ever liked can match
    span = int(max(post.max(initial=0), like_post.max(initial=0))) + 1
    pair_key = user[event] * span + post
    like_key = like_user * span + like_post
    candidate = np.flatnonzero(np.isin(pair_key, like_key))
    shown = pd.DataFrame({"pair": candidate, "key": pair_key[candidate]})
    liked = pd.DataFrame({"key": like_key, "like_time": like_time})
    joined = shown.merge(liked, on="key", how="inner")
    pair = joined["pair"].to_numpy()
    lag = joined["like_time"].to_numpy() - time[event[pair]]
    # a shown post liked twice in the window counts once
    liked_pairs = np.unique(pair[(lag >= 0) & (lag <= window)])
    return np.bincount(event[liked_pairs], minlength=user.size).astype(np.int64)


def _daily(
    code: NDArray[np.int64],
    arm_of_event: NDArray[np.int64],
    time: NDArray[np.int64],
    hit: NDArray[np.int64],
    arms: tuple[str, ...],
) -> tuple[DailyStats, ...]:
    """hitrate per arm and UTC day, the users exposed that day being the unit."""
    if not time.size:
        return ()
    frame = pd.DataFrame(
        {"user": code, "arm": arm_of_event, "day": time // DAY, "hit": hit, "exposure": 1}
    )
    per_user = frame.groupby(["arm", "day", "user"], sort=False)[["hit", "exposure"]].sum()
    per_user = per_user.assign(
        hh=per_user["hit"] ** 2,
        ee=per_user["exposure"] ** 2,
        he=per_user["hit"] * per_user["exposure"],
        n=1,
    )
    per_day = per_user.groupby(level=["arm", "day"]).sum()
    per_day = per_day.sort_index(level=["day", "arm"])
    sums = per_day[["n", "hit", "hh", "exposure", "ee", "he"]].to_numpy(np.float64)
    out = []
    for (arm, day), (n, *moments) in zip(per_day.index.to_list(), sums.tolist(), strict=True):
        label = pd.Timestamp(int(day) * DAY, unit="s").strftime("%Y-%m-%d")
        out.append(DailyStats(day=label, arm=arms[int(arm)], stat=SampleRatio(int(n), *moments)))
    return tuple(out)
