"""Serving speed of the control model at the course's catalogue size (7,023 posts).

Fits CatBoost on a course-like synthetic slice, then times one recommendation request
in-process, three ways:

- **arrays**: :class:`~recommenders.features.RequestFeatures` fills one preallocated
  column-major float32 matrix and CatBoost scores it with one thread (what the service does);
- **candidates N**: the same, scoring only the N posts with the most likes before t;
- **pandas**: the straightforward way, a DataFrame of all posts cross-joined with the
  user's row, the cross features assigned as columns, then ``predict`` with
  ``prediction_type="Probability"`` (predict_proba). Its feature *values* are taken from the
  arrays path outside the timer, so the ratio is a lower bound of the real difference.

Hitrate@5 of full scoring and of the candidate stages on the slice's held-out requests
says which gives more hitrate per millisecond. The peak memory of a fresh process that
loads the bundle and serves requests is measured in a subprocess.
"""

import resource
import subprocess
import sys
import tempfile
import time as clock
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.bench_quality import Dataset, synthetic_data
from bench.report import Result
from feeddata.sources.synthetic import SyntheticConfig
from recommenders.base import TrainingData, one_blas_thread
from recommenders.catboost_model import CatBoostRecommender
from recommenders.evaluation import HOUR, sample_requests, split_time_at_quantile
from recommenders.features import CROSSES, POST, POST_ACTIVITY, POST_SHARES, feature_names
from recommenders.history import LikeHistory

CONFIG = SyntheticConfig.course(users=20_000, days=20)
PARAMS: dict[str, Any] = {"max_rows": 600_000}
REQUESTS = 300
CANDIDATES = (500, 1000, 2000)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _timed(fn: Any, requests: list[tuple[int, int]]) -> list[float]:
    out = []
    for user, at in requests:
        started = clock.perf_counter()
        fn(user, at)
        out.append(clock.perf_counter() - started)
    return out


def _pandas_way(model: CatBoostRecommender, history: LikeHistory) -> Any:
    """The straightforward scorer: returns ``score(user, at)`` timing only the frame work."""
    request, cbm = model._request, model.model
    assert request is not None
    assert cbm is not None
    names = feature_names(model.config.features)
    post_columns = [n for n in names if n in POST or (n.startswith("text_") and n[5:].isdigit())]
    post_columns += [*POST_ACTIVITY, *POST_SHARES]
    user_columns = [n for n in names if n not in post_columns and n not in CROSSES]
    timings: list[float] = []

    def score(user: int, at: int) -> np.ndarray:
        matrix = request.fill(user, at, history)
        frame = pd.DataFrame(matrix, columns=names)
        posts = frame[post_columns].copy()
        user_row = frame.loc[[0], user_columns]
        crosses = frame[list(CROSSES)].to_numpy()
        started = clock.perf_counter()
        joined = posts.merge(user_row, how="cross")
        joined[list(CROSSES)] = crosses
        proba = cbm.predict(joined[names], prediction_type="Probability", thread_count=1)[:, 1]
        timings.append(clock.perf_counter() - started)
        return np.asarray(proba)

    score.timings = timings  # type: ignore[attr-defined]
    return score


def _hitrate(model: CatBoostRecommender, data: Dataset, history: LikeHistory, split: int) -> float:
    requests = sample_requests(data.interactions, split, max_requests=2000, seed=0)
    hits = 0
    for user, at in zip(requests.user_id, requests.time, strict=True):
        shown = history.post_index(model.recommend(int(user), int(at), 5, history))
        liked = history.liked_between(int(user), int(at), int(at) + HOUR)
        hits += bool(np.intersect1d(shown, liked).size)
    return hits / len(requests)


SERVE_SCRIPT = """
import sys, numpy as np
from pathlib import Path
from feeddata.interactions import Interactions
from recommenders.catboost_model import CatBoostRecommender
from recommenders.history import LikeHistory
folder = Path(sys.argv[1])
likes = np.load(folder / "likes.npz")
history = LikeHistory(likes["post_ids"], Interactions.from_arrays(
    likes["user_id"], likes["post_id"], likes["timestamp"], np.ones(len(likes["user_id"]), bool)))
model = CatBoostRecommender.load(folder / "catboost")
for user, at in likes["requests"]:
    model.recommend(int(user), int(at), 5, history)
status = Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]
print(int(status) / 1024)  # the high-water mark of this process (ru_maxrss survives exec)
"""


def _serving_memory_mb(model: CatBoostRecommender, data: Dataset, requests: np.ndarray) -> float:
    """Peak RSS (MB) of a fresh process that loads the bundle and the likes and serves."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model.save(folder / "catboost")
        likes = data.interactions.likes()
        np.savez(
            folder / "likes.npz",
            post_ids=data.posts.index.to_numpy(),
            user_id=likes.user_id,
            post_id=likes.post_id,
            timestamp=likes.timestamp,
            requests=requests,
        )
        out = subprocess.run(
            [sys.executable, "-c", SERVE_SCRIPT, str(folder)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        )
    return float(out.stdout.strip().splitlines()[-1])


def run() -> None:
    """ms/request of the arrays path, candidate stages and the pandas way -> scoring.json."""
    data = synthetic_data(CONFIG)
    split = split_time_at_quantile(data.interactions, 0.8)
    model = CatBoostRecommender(**PARAMS)
    started = clock.perf_counter()
    model.fit(TrainingData.cut(data.interactions, data.posts, data.users, split))
    fit_s = clock.perf_counter() - started
    one_blas_thread()  # requests are timed as the service runs them
    history = LikeHistory(data.posts.index.to_numpy(), data.interactions.likes())
    sample = sample_requests(data.interactions, split, max_requests=REQUESTS, seed=1)
    requests = [(int(u), int(t)) for u, t in zip(sample.user_id, sample.time, strict=True)]
    model.config = model.config.model_copy(update={"candidates": 0})  # score every post
    naive = _pandas_way(model, history)
    for user, at in requests[:20]:  # the two ways must agree before they are compared
        fast = 1 / (1 + np.exp(-model._scores(user, at, history)))
        assert np.allclose(fast, naive(user, at), atol=1e-6)
    naive.timings.clear()
    rows: list[list[Any]] = []
    arrays = _timed(lambda u, t: model._scores(u, t, history), requests)
    _timed(naive, requests)
    fill = _timed(lambda u, t: model._request.fill(u, t, history), requests)  # type: ignore[union-attr]
    base = _percentiles(arrays)
    full_hitrate = _hitrate(model, data, history, split)
    rows.append(["arrays, all posts", *base, 1.0, full_hitrate])
    slow = _percentiles(naive.timings)
    rows.append(["pandas + predict_proba", *slow, slow[0] / base[0], ""])
    rows.append(["  of which feature fill", *_percentiles(fill), "", ""])
    for n in CANDIDATES:
        model.config = model.config.model_copy(update={"candidates": n})
        timing = _percentiles(_timed(lambda u, t: model._scores(u, t, history), requests))
        rows.append([f"arrays, {n} candidates", *timing, "", _hitrate(model, data, history, split)])
    model.config = model.config.model_copy(update={"candidates": 0})
    memory = _serving_memory_mb(model, data, np.asarray(requests[:100]))
    assert model.meta is not None
    Result(
        name="scoring",
        title="Control model scoring, in-process ms per request (7,023 posts, one thread)",
        command="make bench",
        columns=["way", "p50 ms", "p99 ms", "pandas / arrays (p50)", "hitrate@5"],
        rows=rows,
        notes=[
            f"data: {data.name}, {len(data.interactions):,} feed rows; model trained in "
            f"{fit_s:.0f}s on {model.meta.rows['train_rows']:,} rows, "
            f"{model.meta.rows['trees']} trees of depth {model.config.depth}",
            "pandas timings exclude computing the feature values (taken from the arrays path)",
            f"peak memory of a process loading the bundle and the likes and serving: "
            f"{memory:.0f} MB",
            f"benchmark process peak RSS (data, training, scoring): {_peak_mb():.0f} MB",
        ],
        data={"fit_s": fit_s, "serving_peak_mb": memory, "config": CONFIG.to_dict()},
    ).save()


if __name__ == "__main__":
    run()
