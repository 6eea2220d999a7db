"""Course-format experiment logs with a planted effect, for tests and benchmarks.

Users have a like propensity (Beta) and an activity level (Gamma); each recommendation
event likes each of its k posts with probability propensity x (1 + lift in the test arm),
at a time up to two windows after the event, so some likes fall outside the window.
Background likes (unrelated posts) and pre-experiment likes (correlated with the
propensity, so CUPED has something to remove) fill the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiment.assignment import BUCKETS, bucket

START = 1_640_822_400  # 2021-12-30 00:00 UTC, the day after the course data end


def synthetic_logs(
    *,
    users: int = 2_000,
    exposures: int = 6_000,
    likes: int = 7_000,
    posts: int = 7_000,
    k: int = 5,
    days: int = 14,
    lift: float = 0.0,
    control_share: float = 0.5,
    salt: str = "synthetic",
    window: int = 3600,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(views, likes) frames with the columns of ``views.csv`` and ``likes.csv``.

    ``likes`` is the total: liked shown posts, then background and pre-period likes to
    make up the rest (if the shown ones fall short of it).
    """
    if exposures < users:
        raise ValueError(f"exposures ({exposures}) must be at least users ({users})")
    rng = np.random.default_rng(seed)
    user_ids = np.arange(1, users + 1, dtype=np.int64)
    threshold = int(control_share * BUCKETS)
    is_test = np.array([bucket(salt, int(u)) >= threshold for u in user_ids])
    propensity = rng.beta(1.2, 20.0, size=users)
    activity = rng.gamma(1.0, 1.0, size=users)

    # every user at least once, the rest by activity
    extra = rng.choice(users, size=exposures - users, p=activity / activity.sum())
    owner = np.sort(np.concatenate([np.arange(users), extra]))
    time = START + rng.integers(0, days * 86_400, size=exposures)
    recs = rng.integers(1, posts + 1, size=(exposures, k))
    p_like = np.clip(propensity[owner] * np.where(is_test[owner], 1 + lift, 1.0), 0, 1)
    liked = rng.random((exposures, k)) < p_like[:, None]
    rows, cols = np.nonzero(liked)
    like_frames = [
        pd.DataFrame(
            {
                "user_id": user_ids[owner[rows]],
                "post_id": recs[rows, cols],
                "timestamp": time[rows] + rng.integers(0, 2 * window, size=rows.size),
            }
        )
    ]
    rest = max(likes - rows.size, 0)
    if rest:
        # half before the experiment (the covariate), half during it
        who = rng.choice(users, size=rest, p=propensity / propensity.sum())
        when = np.where(
            rng.random(rest) < 0.5,
            START - rng.integers(1, 28 * 86_400, size=rest),
            START + rng.integers(0, days * 86_400, size=rest),
        )
        like_frames.append(
            pd.DataFrame(
                {
                    "user_id": user_ids[who],
                    "post_id": rng.integers(1, posts + 1, size=rest),
                    "timestamp": when,
                }
            )
        )
    views = pd.DataFrame(
        {
            "user_id": user_ids[owner],
            "exp_group": np.where(is_test[owner], "test", "control"),
            "recommendations": ["[" + " ".join(map(str, r)) + "]" for r in recs.tolist()],
            "timestamp": time,
        }
    )
    likes_frame = pd.concat(like_frames, ignore_index=True)
    return views, likes_frame.sort_values("timestamp", kind="stable", ignore_index=True)
