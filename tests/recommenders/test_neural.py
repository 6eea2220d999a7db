import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feeddata.interactions import Interactions
from feeddata.sources.synthetic import SyntheticConfig, iter_chunks
from recommenders.base import TrainingData
from recommenders.history import LikeHistory
from recommenders.neural import NeuralRecommender
from recommenders.neural.inputs import HOUR, ViewLog
from recommenders.neural.network import TorchScorer

# small and fast: the hashing text encoder, a narrow network, a few rounds on one thread
SMALL = {
    "encoder": "hashing",
    "dims": 16,
    "history": 8,
    "max_epochs": 3,
    "check_every": 1500,
    "batch_size": 128,
    "threads": 1,
}


@pytest.fixture(scope="module")
def world() -> tuple[Interactions, pd.DataFrame, pd.DataFrame]:
    """A tiny synthetic social network: feed, posts and users."""
    tables: dict[str, list[pd.DataFrame]] = {}
    for chunk in iter_chunks(SyntheticConfig.demo(users=250, posts=60, days=5, seed=3)):
        tables.setdefault(chunk.table, []).append(chunk.rows)
    feed, posts, users = (pd.concat(tables[t]) for t in ("feed_data", "post_text_df", "user_data"))
    events = Interactions.from_arrays(
        feed["user_id"].to_numpy(),
        feed["post_id"].to_numpy(),
        feed["timestamp"].astype("datetime64[s]").astype("int64").to_numpy(),
        (feed["action"] == "like").to_numpy(),
    )
    return events, posts.set_index("post_id").sort_index(), users.set_index("user_id").sort_index()


@pytest.fixture(scope="module")
def until(world: tuple[Interactions, pd.DataFrame, pd.DataFrame]) -> int:
    return int(np.quantile(world[0].timestamp, 0.7))


@pytest.fixture(scope="module")
def fitted(world: tuple[Interactions, pd.DataFrame, pd.DataFrame], until: int) -> NeuralRecommender:
    events, posts, users = world
    return NeuralRecommender(**SMALL).fit(TrainingData.cut(events, posts, users, until))


def _requests(events: Interactions, until: int) -> list[tuple[int, int]]:
    """Views before and after the training cutoff, from users with likes."""
    likers = np.unique(events.likes().user_id)
    views = events.views()
    pick = np.isin(views.user_id, likers)
    users, times = views.user_id[pick], views.timestamp[pick]
    before = np.flatnonzero(times < until)[-40::8]
    after = np.flatnonzero(times >= until)[:40:8]
    return [(int(users[i]), int(times[i])) for i in np.r_[before, after]]


def test_fit_reports_examples_and_the_validation_slice(fitted: NeuralRecommender) -> None:
    assert fitted.meta is not None
    assert fitted.meta.rows["train_examples"] > fitted.meta.rows["valid_examples"] > 0
    assert {"valid_loss", "valid_hit5", "best_round"} <= set(fitted.meta.metrics)


def test_the_final_passes_learn_the_validation_slice(
    fitted: NeuralRecommender, world: tuple[Interactions, pd.DataFrame, pd.DataFrame], until: int
) -> None:
    assert fitted.meta is not None
    metrics = fitted.meta.metrics
    assert metrics["valid_loss_after_final_passes"] < metrics["valid_loss"]
    events, posts, users = world
    without = NeuralRecommender(**SMALL, final_passes=0)
    without.fit(TrainingData.cut(events, posts, users, until))
    assert without.meta is not None
    assert "valid_loss_after_final_passes" not in without.meta.metrics
    assert without.meta.metrics["valid_loss"] == metrics["valid_loss"]  # the same best round
    assert without.serving is not None
    assert fitted.serving is not None
    moved = without.serving.weights["head_in.weight"] != fitted.serving.weights["head_in.weight"]
    assert moved.any()


def test_a_time_budget_starts_no_round_it_cannot_finish(
    fitted: NeuralRecommender, world: tuple[Interactions, pd.DataFrame, pd.DataFrame], until: int
) -> None:
    assert fitted.meta is not None
    assert fitted.meta.metrics["rounds"] > 1
    assert fitted.meta.metrics["stopped_by_time_budget"] == 0.0
    events, posts, users = world
    # over as soon as it starts: the first round runs (there is no duration to go by yet),
    # the second would end after the budget
    hurried = NeuralRecommender(**SMALL, max_train_s=1e-3)
    hurried.fit(TrainingData.cut(events, posts, users, until))
    assert hurried.meta is not None
    assert hurried.meta.metrics["rounds"] == 1
    assert hurried.meta.metrics["best_round"] == 1
    assert hurried.meta.metrics["stopped_by_time_budget"] == 1.0
    assert "valid_loss_after_final_passes" in hurried.meta.metrics  # the final passes still run


def test_nothing_after_the_request_time_changes_its_scores(
    fitted: NeuralRecommender, world: tuple[Interactions, pd.DataFrame, pd.DataFrame], until: int
) -> None:
    events, posts, _ = world
    post_ids = posts.index.to_numpy()
    full = LikeHistory(post_ids, events.likes())
    rng = np.random.default_rng(0)
    assert fitted.serving is not None
    trained_views = fitted.serving.views
    for user, at in _requests(events, until):
        # the past, plus made-up likes after t (one from this user) instead of the real ones
        n = 200
        future = Interactions.from_arrays(
            np.r_[user, rng.choice(events.user_id, n)],
            rng.choice(post_ids, n + 1),
            at + rng.integers(0, 3 * HOUR, n + 1),
            np.ones(n + 1, bool),
        )
        past = events.likes().before(at)
        altered = LikeHistory(
            post_ids,
            Interactions.from_arrays(
                np.r_[past.user_id, future.user_id],
                np.r_[past.post_id, future.post_id],
                np.r_[past.timestamp, future.timestamp],
                np.ones(len(past) + len(future), bool),
            ),
        )
        expected = fitted._scores(user, at, full)
        assert np.array_equal(expected, fitted._scores(user, at, altered))
        assert np.array_equal(
            fitted.recommend(user, at, 5, full), fitted.recommend(user, at, 5, altered)
        )
        # the bundle's views: only those before t count, even for requests before the cutoff
        views = events.views().before(at)
        fitted.serving.views = _view_log(fitted, views)
        try:
            assert np.array_equal(expected, fitted._scores(user, at, full))
        finally:
            fitted.serving.views = trained_views


def _view_log(model: NeuralRecommender, views: Interactions) -> ViewLog:
    serving = model.serving
    assert serving is not None
    rows = serving.profiles.index(views.user_id)
    posts = np.searchsorted(serving.post_ids, views.post_id)
    n_rows = len(serving.profiles.user_ids) + 1
    return ViewLog.build(rows, posts, views.timestamp, n_rows, len(serving.post_ids))


def test_numpy_serving_matches_the_torch_module(
    fitted: NeuralRecommender, world: tuple[Interactions, pd.DataFrame, pd.DataFrame], until: int
) -> None:
    _assert_numpy_matches_torch(fitted, world, until)


def test_numpy_serving_matches_the_torch_module_without_profiles_and_a_wider_head(
    world: tuple[Interactions, pd.DataFrame, pd.DataFrame], until: int
) -> None:
    events, posts, users = world
    params = SMALL | {"profile": False, "head_dims": 48, "user_tower": "mean", "max_epochs": 1}
    model = NeuralRecommender(**params).fit(TrainingData.cut(events, posts, users, until))
    assert model.serving is not None
    assert model.serving.weights["head_in.weight"].shape[0] == 48
    _assert_numpy_matches_torch(model, world, until)


def _assert_numpy_matches_torch(
    fitted: NeuralRecommender, world: tuple[Interactions, pd.DataFrame, pd.DataFrame], until: int
) -> None:
    events, posts, _ = world
    serving = fitted.serving
    assert serving is not None
    history = LikeHistory(posts.index.to_numpy(), events.likes())
    torch_scorer = TorchScorer(serving.shape, serving.weights, serving.text, serving.post_topic)
    numpy_scorer = serving.scorer
    for user, at in _requests(events, until):
        expected = fitted._scores(user, at, history)
        serving.scorer = torch_scorer  # type: ignore[assignment]
        try:
            got = fitted._scores(user, at, history)
        finally:
            serving.scorer = numpy_scorer
        assert np.allclose(expected, got, rtol=1e-4, atol=1e-4)


def test_the_bundle_gives_the_same_scores(
    fitted: NeuralRecommender,
    world: tuple[Interactions, pd.DataFrame, pd.DataFrame],
    until: int,
    tmp_path: Path,
) -> None:
    events, posts, _ = world
    history = LikeHistory(posts.index.to_numpy(), events.likes())
    loaded = NeuralRecommender.load(fitted.save(tmp_path / "neural"))
    assert loaded.meta == fitted.meta
    for user, at in [*_requests(events, until), (10**9, until)]:  # and an unknown user
        scores = fitted._scores(user, at, history)
        assert np.isfinite(scores).all()
        assert np.array_equal(scores, loaded._scores(user, at, history))


def test_the_same_seed_gives_the_same_weights(
    world: tuple[Interactions, pd.DataFrame, pd.DataFrame], until: int, fitted: NeuralRecommender
) -> None:
    events, posts, users = world
    again = NeuralRecommender(**SMALL).fit(TrainingData.cut(events, posts, users, until))
    assert again.serving is not None
    assert fitted.serving is not None
    assert again.version == fitted.version
    for name, weights in fitted.serving.weights.items():
        assert np.array_equal(weights, again.serving.weights[name]), name


def test_another_catalogue_is_refused(fitted: NeuralRecommender) -> None:
    history = LikeHistory(np.arange(3), Interactions.from_arrays([], [], [], []))
    with pytest.raises(ValueError, match="retrain with `feedlab train neural`"):
        fitted.recommend(1, 0, 3, history)


def test_unknown_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="dimz"):
        NeuralRecommender(dimz=3)


def test_serving_a_bundle_never_imports_torch(
    fitted: NeuralRecommender,
    world: tuple[Interactions, pd.DataFrame, pd.DataFrame],
    until: int,
    tmp_path: Path,
) -> None:
    """A fresh process loads the bundle and scores with numpy only."""
    events, posts, _ = world
    folder = fitted.save(tmp_path / "neural")
    likes = events.likes()
    np.savez(tmp_path / "likes.npz", u=likes.user_id, p=likes.post_id, t=likes.timestamp)
    script = f"""
import sys
from pathlib import Path
import numpy as np
from feeddata.interactions import Interactions
from recommenders.history import LikeHistory
from recommenders.neural import NeuralRecommender
model = NeuralRecommender.load(Path({str(folder)!r}))
likes = np.load({str(tmp_path / "likes.npz")!r})
u, p, t = likes["u"], likes["p"], likes["t"]
events = Interactions.from_arrays(u, p, t, np.ones(len(u), bool))
history = LikeHistory(np.asarray({posts.index.tolist()!r}), events)
print(len(model.recommend({int(events.user_id[0])}, {until}, 5, history)), "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["5", "False"]


@pytest.mark.parametrize("anchors", ["all", "per_hour", "first_in_hour"])
def test_each_user_hour_weighs_one_when_anchors_are_per_hour(anchors: str) -> None:
    from recommenders.neural.examples import LikeTable, build_examples

    # user 0 likes at 100 and 4,000; views: three in hour 0 and one in hour 1 (user 0),
    # one view of user 1 (who likes nothing, so it is no example)
    likes = LikeTable.build(np.array([0, 0]), np.array([3, 4]), np.array([100, 4_000]))
    rows, times = np.array([0, 0, 0, 0, 1]), np.array([10, 20, 30, 3_700, 50])
    ex = build_examples(
        likes,
        rows,
        times,
        window=HOUR,
        anchors=anchors,  # type: ignore[arg-type]
        max_examples=100,
        rng=np.random.default_rng(0),
    )
    cases: dict[str, tuple[list[int], list[float]]] = {
        "all": ([10, 20, 30, 3_700], [1, 1, 1, 1]),
        "per_hour": ([10, 20, 30, 3_700], [1 / 3, 1 / 3, 1 / 3, 1]),
        "first_in_hour": ([10, 3_700], [1, 1]),
    }
    times_expected, weights_expected = cases[anchors]
    assert ex.time.tolist() == times_expected
    np.testing.assert_allclose(ex.weight, weights_expected, rtol=1e-6)


def test_the_any_loss_is_minus_the_log_of_the_mass_on_the_targets() -> None:
    import torch

    from recommenders.neural.training import _loss

    # example 0: post 0 liked before (masked), targets 1 and 2; example 1: no target
    scores = torch.tensor([[5.0, 1.0, 0.0, 1.0], [0.0, 1.0, 2.0, 3.0]])
    liked = torch.tensor([[True, False, False, False], [False] * 4])
    target = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0] * 4])
    weight = torch.tensor([1.0, 1.0])
    p = torch.softmax(torch.tensor([1.0, 0.0, 1.0]), 0)  # posts 1, 2, 3 of example 0
    expected_any = -torch.log(p[0] + p[1]) / 2  # the target-less example adds 0 over 2
    expected_mean = -(torch.log(p[0]) + torch.log(p[1])) / 2 / 2
    assert float(_loss(scores, liked, target, weight, "any")) == pytest.approx(
        float(expected_any), rel=1e-5
    )
    assert float(_loss(scores, liked, target, weight, "mean")) == pytest.approx(
        float(expected_mean), rel=1e-5
    )
    # "any" asks less than "mean" when one target is easy and another is not
    assert float(expected_any) < float(expected_mean)
