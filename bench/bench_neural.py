"""The neural test arm: offline quality next to the control, and serving speed and memory.

- **Quality**: hitrate@5 of the neural model, the CatBoost control, popularity and the EASE
  peer on MovieLens 100K and the synthetic demo network, all fitted before the 0.8
  quantile of view times and scored on the same held-out requests (the protocol of
  :mod:`recommenders.evaluation`, as ``feedlab evaluate --split-quantile 0.8 --k 5``).
- **Serving**: the model fitted on a course-like slice (7,023 posts), then one request
  timed in-process (user encoding, post and cross features, scores, top 5), with the numpy
  scorer the service uses and with the torch module on the same inputs; and the peak memory
  of a fresh process that loads the bundle and serves, without torch and with it.
"""

import contextlib
import subprocess
import sys
import tempfile
import time as clock
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_quality import Dataset, movielens_data, synthetic_data
from bench.report import Result
from feeddata.sources.synthetic import SyntheticConfig
from recommenders.base import Recommender, TrainingData, one_blas_thread
from recommenders.baselines import PopularityRecommender
from recommenders.catboost_model import CatBoostRecommender
from recommenders.evaluation import evaluate, sample_requests, split_time_at_quantile
from recommenders.history import LikeHistory
from recommenders.neural import NeuralRecommender
from recommenders.neural.network import TorchScorer
from recommenders.peers import EASERecommender

K = 5
REQUESTS = 10_000
SERVING_CONFIG = SyntheticConfig.course(users=20_000, days=20)
SERVING_PARAMS: dict[str, Any] = {
    "max_examples": 100_000,
    "max_epochs": 1,
    "negatives": 1000,
    "check_every": 50_000,
    "max_validation": 2_000,
}
"""A quick fit: this part measures serving speed and memory, not quality."""
TIMED_REQUESTS = 500
ML_SEEDS = (1, 2)
"""More seeds of the neural model on ml-100k (fits of 10-17 min each on 2 shared cores)."""


def quality_rows(
    data: Dataset, more_seeds: tuple[int, ...] = ()
) -> tuple[list[list[Any]], dict[str, Any]]:
    """hitrate@5 of neural (and of its ``more_seeds``), catboost, popularity and the peer on
    ``data``, each compared with catboost on the same requests."""
    split = split_time_at_quantile(data.interactions, 0.8)
    models: dict[str, Recommender] = {
        "catboost": CatBoostRecommender(),
        "popular": PopularityRecommender(),
        "ease (peer)": EASERecommender(),
        "neural": NeuralRecommender(),
        **{f"neural, seed {seed}": NeuralRecommender(seed=seed) for seed in more_seeds},
    }
    report = evaluate(
        data.interactions,
        data.posts,
        data.users,
        models,
        split_time=split,
        k=K,
        max_requests=REQUESTS,
        progress=False,
        reference="catboost",
    )
    scores = report.recommenders
    control, popular = scores["catboost"].hitrate, scores["popular"].hitrate
    rows: list[list[Any]] = []
    for name, score in scores.items():
        versus = report.comparisons.get(name)
        rows.append(
            [
                data.name,
                name,
                score.hitrate,
                score.hitrate / control if control else float("nan"),
                f"{versus.difference:+.3f} ({versus.ci95[0]:+.3f}, {versus.ci95[1]:+.3f})"
                if versus
                else "",
                f"{versus.only_this}/{versus.only_reference}, p {versus.p_value:.2g}"
                if versus
                else "",
                score.hitrate / popular if popular else float("nan"),
                score.ms_per_request,
                score.fit_s,
            ]
        )
    rows.append([data.name, "ceiling", report.ceiling, "", "", "", "", "", ""])
    neural = models["neural"].meta
    info = {
        "requests": report.requests,
        "split_time": split,
        "neural_metrics": neural.metrics if neural else {},
        "neural_rows": neural.rows if neural else {},
    }
    return rows, info


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _time_requests(
    model: NeuralRecommender, history: LikeHistory, requests: list[tuple[int, int]]
) -> list[float]:
    out = []
    for user, at in requests:
        started = clock.perf_counter()
        model.recommend(user, at, K, history)
        out.append(clock.perf_counter() - started)
    return out


SERVE_SCRIPT = """
import sys, numpy as np
from pathlib import Path
from feeddata.interactions import Interactions
from recommenders.history import LikeHistory
from recommenders.neural import NeuralRecommender
from recommenders.base import one_blas_thread
one_blas_thread()  # as the service runs
folder, backend = Path(sys.argv[1]), sys.argv[2]
likes = np.load(folder / "likes.npz")
history = LikeHistory(likes["post_ids"], Interactions.from_arrays(
    likes["user_id"], likes["post_id"], likes["timestamp"], np.ones(len(likes["user_id"]), bool)))
model = NeuralRecommender.load(folder / "neural")
if backend == "torch":
    from recommenders.neural.network import TorchScorer
    s = model.serving
    s.scorer = TorchScorer(s.shape, s.weights, s.text, s.post_topic)
for user, at in likes["requests"]:
    model.recommend(int(user), int(at), 5, history)
status = Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]
print("torch" in sys.modules, int(status) / 1024)
"""


def _serving_memory_mb(folder: Path, backend: str) -> tuple[bool, float]:
    """(torch imported, peak RSS in MB) of a fresh process that loads the bundle and serves."""
    out = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, str(folder), backend],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    imported, peak = out.stdout.strip().splitlines()[-1].split()
    return imported == "True", float(peak)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def serving_rows() -> tuple[list[list[Any]], dict[str, Any]]:
    """ms/request (p50, p99) and peak memory, numpy scorer vs the torch module."""
    data = synthetic_data(SERVING_CONFIG)
    split = split_time_at_quantile(data.interactions, 0.8)
    model = NeuralRecommender(**SERVING_PARAMS)
    started = clock.perf_counter()
    model.fit(TrainingData.cut(data.interactions, data.posts, data.users, split))
    fit_s = clock.perf_counter() - started
    assert model.serving is not None
    assert model.meta is not None
    history = LikeHistory(data.posts.index.to_numpy(), data.interactions.likes())
    sample = sample_requests(data.interactions, split, max_requests=TIMED_REQUESTS, seed=1)
    requests = [(int(u), int(t)) for u, t in zip(sample.user_id, sample.time, strict=True)]
    serving = model.serving
    numpy_scorer = serving.scorer
    torch_scorer = TorchScorer(serving.shape, serving.weights, serving.text, serving.post_topic)
    timings: dict[str, list[float]] = {"numpy": [], "torch": []}
    for _ in range(2):  # interleaved, so both see the same machine load
        for backend, scorer in (("numpy", numpy_scorer), ("torch", torch_scorer)):
            serving.scorer = scorer  # type: ignore[assignment]
            with one_blas_thread(), _torch_threads(1):  # one thread each, as a worker runs
                timings[backend] += _time_requests(model, history, requests)
    serving.scorer = numpy_scorer
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model.save(folder / "neural")
        bundle_mb = sum(f.stat().st_size for f in (folder / "neural").iterdir()) / 2**20
        likes = data.interactions.likes()
        np.savez(
            folder / "likes.npz",
            post_ids=data.posts.index.to_numpy(),
            user_id=likes.user_id,
            post_id=likes.post_id,
            timestamp=likes.timestamp,
            requests=np.asarray(requests[:200]),
        )
        for backend in ("numpy", "torch"):
            p50, p99 = _percentiles(timings[backend])
            imported, peak = _serving_memory_mb(folder, backend)
            rows.append([backend, p50, p99, peak, "yes" if imported else "no"])
    info = {
        "fit_s": round(fit_s, 1),
        "bundle_mb": round(bundle_mb, 1),
        "posts": len(data.posts),
        "likes": int(data.interactions.is_like.sum()),
        "views": int((~data.interactions.is_like).sum()),
        "rows": model.meta.rows,
        "metrics": model.meta.metrics,
    }
    return rows, info


def run(quality: bool = True, serving: bool = True) -> None:
    """Quality and serving tables -> bench/results/neural.json, neural_serving.json."""
    if quality:
        _run_quality()
    if serving:
        _run_serving()


def _run_quality() -> None:
    rows: list[list[Any]] = []
    data: dict[str, Any] = {}
    for dataset, seeds in (
        (movielens_data(), ML_SEEDS),
        (synthetic_data(SyntheticConfig.demo()), ()),
    ):
        part, info = quality_rows(dataset, seeds)
        rows += part
        data[dataset.name] = info
    Result(
        name="neural",
        title="Neural test arm vs the CatBoost control: hitrate@5 (split at the 0.8 quantile "
        "of views, 1 h window, same requests)",
        command="make bench",
        columns=[
            "data",
            "recommender",
            "hitrate@5",
            "x catboost",
            "- catboost (95% CI)",
            "only it/only catboost hit",
            "x popular",
            "ms/req",
            "fit s",
        ],
        rows=rows,
        notes=[
            "neural: the text encoder is all-MiniLM-L6-v2 (cached by text hash under "
            "FEEDLAB_ARTIFACTS/text_embeddings)",
            "ceiling: share of requests followed by any like within the hour",
            "- catboost: the difference of hitrates on the same requests, with its 95% "
            "interval; only it/only catboost: the requests one of the two hit and the other "
            "missed, and the exact McNemar p-value of that split (recommenders.evaluation).",
            f"ml-100k: the neural model is also fitted with seeds {', '.join(map(str, ML_SEEDS))}"
            " (the default is 0): its 0.8 split leaves few requests, and the spread between "
            "seeds shows how much of a gap to the control is noise.",
        ],
        data=data,
    ).save()


def _run_serving() -> None:
    serving, info = serving_rows()
    Result(
        name="neural_serving",
        title="Neural model serving, in-process ms per request (7,023 posts): numpy vs torch",
        command="make bench",
        columns=["scorer", "p50 ms", "p99 ms", "peak MB (load + serve)", "torch imported"],
        rows=serving,
        notes=[
            f"fitted on {SERVING_CONFIG.users:,} users x {SERVING_CONFIG.days} days "
            f"({info['likes']:,} likes, {info['views']:,} views) in {info['fit_s']} s; "
            f"bundle {info['bundle_mb']} MB",
            "a request: likes before t from LikeHistory, user encoding, post and cross "
            "features of all posts, scores, exclusion of liked posts, top 5",
        ],
        data=info,
    ).save()


if __name__ == "__main__":
    # python -m bench.bench_neural [quality|serving]: one part only
    part = sys.argv[1] if len(sys.argv) > 1 else ""
    run(quality=part != "serving", serving=part != "quality")
