import numpy as np
import pandas as pd
import pytest

from feeddata.interactions import Interactions
from recommenders.base import TrainingData
from recommenders.catboost_model import CatBoostRecommender
from recommenders.features import LikeLog, RequestFeatures, feature_names, training_matrix
from recommenders.history import LikeHistory
from recommenders.snapshots import FeatureParams, FeatureTables, build_tables, encode

DAY = 86_400
START = 1_633_046_400  # 2021-10-01 00:00 UTC
TOPICS = ["movie", "covid", "sport", "tech"]
PARAMS = FeatureParams(text_dims=4, snapshot_days=2, recent_s=3 * DAY)
# features computed from float sums in a different order (cosines, item-item sums)
FLOAT_SUMS = {"text_sim", "text_sim_recent", "cf_score", "cf_mean", "cf_recent"}


def small_feed(
    users: int = 120, posts: int = 40, days: int = 12, seed: int = 0
) -> tuple[Interactions, pd.DataFrame, pd.DataFrame]:
    """A random feed where users like posts of their favourite topic more often."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, len(TOPICS), posts)
    favourite = rng.integers(0, len(TOPICS), users)
    n = users * days * 6
    user, post = rng.integers(0, users, n), rng.integers(0, posts, n)
    view_time = START + np.sort(rng.integers(0, days * DAY, n))
    p_like = np.where(topic[post] == favourite[user], 0.5, 0.05)
    liked = rng.random(n) < p_like
    like_time = view_time[liked] + rng.integers(1, 600, int(liked.sum()))
    events = Interactions.from_arrays(
        np.r_[user, user[liked]] + 100,
        np.r_[post, post[liked]] + 1,
        np.r_[view_time, like_time],
        np.r_[np.zeros(n, bool), np.ones(int(liked.sum()), bool)],
    )
    catalogue = pd.DataFrame(
        {
            "text": [
                f"{TOPICS[t]} story number {i} " + "word " * (i % 7) for i, t in enumerate(topic)
            ],
            "topic": [TOPICS[t] for t in topic],
        },
        index=pd.Index(np.arange(1, posts + 1), name="post_id"),
    )
    profiles = pd.DataFrame(
        {
            "gender": rng.integers(0, 2, users),
            "age": rng.integers(14, 70, users),
            "country": rng.choice(["Russia", "Ukraine"], users),
            "city": rng.choice(["Moscow", "Kyiv", "Omsk"], users),
            "exp_group": rng.integers(0, 5, users),
            "os": rng.choice(["Android", "iOS"], users),
            "source": rng.choice(["ads", "organic"], users),
        },
        index=pd.Index(np.arange(users) + 100, name="user_id"),
    )
    return events, catalogue, profiles


def _serving(tables: FeatureTables, likes: Interactions, user: int, time: int) -> np.ndarray:
    history = LikeHistory(tables.post_ids, likes)
    return RequestFeatures(tables, PARAMS).fill(user, time, history).copy()


def test_encoding_reserves_zero_for_unknown_and_orders_by_frequency() -> None:
    codes, vocab = encode(pd.Series(["Omsk", "Moscow", "Moscow", None, "Kyiv"]))
    assert vocab == ["", "Moscow", "Kyiv", "Omsk"]
    assert codes.tolist() == [3, 1, 1, 0, 2]


def test_training_rows_and_serving_rows_are_the_same_features() -> None:
    events, posts, users = small_feed()
    until = START + 10 * DAY
    data = events.before(until)
    tables = build_tables(data, posts, users, PARAMS, until=until)
    log = LikeLog(data.likes(), tables)
    names = feature_names(PARAMS)
    exact = [j for j, name in enumerate(names) if name not in FLOAT_SUMS]
    close = [j for j, name in enumerate(names) if name in FLOAT_SUMS]
    all_posts = np.arange(len(tables.post_ids))
    for user_id, time in [(100, START + 5 * DAY + 77), (150, until - 1), (219, START + 3600)]:
        user = tables.user_index(np.asarray([user_id]))
        rows = training_matrix(
            tables,
            PARAMS,
            log,
            np.repeat(user, len(all_posts)),
            all_posts,
            np.full(len(all_posts), time),
        )
        served = _serving(tables, data.likes(), user_id, time)
        assert np.array_equal(rows[:, exact], served[:, exact])
        np.testing.assert_allclose(rows[:, close], served[:, close], rtol=1e-5, atol=1e-6)
        assert served[:, names.index("user_likes")].max() > 0 or time < START + DAY


def test_rows_of_chosen_posts_are_those_rows_of_every_post() -> None:
    # Serving fills only the candidates' rows; they must be the full matrix's rows.
    events, posts, users = small_feed()
    until = START + 10 * DAY
    data = events.before(until)
    tables = build_tables(data, posts, users, PARAMS, until=until)
    history = LikeHistory(tables.post_ids, data.likes())
    names = feature_names(PARAMS)
    exact = [j for j, name in enumerate(names) if name not in FLOAT_SUMS]
    close = [j for j, name in enumerate(names) if name in FLOAT_SUMS]
    request = RequestFeatures(tables, PARAMS)
    chosen = np.random.default_rng(3).permutation(len(tables.post_ids))[:17]
    for user_id, time in [(100, START + 5 * DAY + 77), (150, until - 1), (219, START + 3600)]:
        every = request.fill(user_id, time, history)[chosen]
        some = request.fill(user_id, time, history, chosen)
        assert some.shape == (17, len(names))
        assert np.array_equal(every[:, exact], some[:, exact])
        np.testing.assert_allclose(every[:, close], some[:, close], rtol=1e-6, atol=1e-7)
        assert some[:, names.index("topic_likes")].max() > 0 or time < START + DAY


def test_feed_rows_after_t_change_no_feature_at_t() -> None:
    events, posts, users = small_feed()
    until, t = START + 10 * DAY, START + 6 * DAY + 5000
    before_t = events.before(t)
    early = build_tables(before_t, posts, users, PARAMS, until=until)
    full = build_tables(events.before(until), posts, users, PARAMS, until=until)
    for user in (100, 133, 170):
        assert np.array_equal(
            _serving(early, before_t.likes(), user, t),
            _serving(full, events.before(until).likes(), user, t),
        )
    # and training rows at t, built from either feed
    rows = (np.array([0, 5, 9]), np.array([3, 7, 1]), np.full(3, t))
    a = training_matrix(early, PARAMS, LikeLog(before_t.likes(), early), *rows)
    b = training_matrix(full, PARAMS, LikeLog(events.before(until).likes(), full), *rows)
    assert np.array_equal(a, b)


def test_recommendations_at_t_ignore_likes_after_t() -> None:
    events, posts, users = small_feed()
    until = START + 10 * DAY
    model = CatBoostRecommender(iterations=30, depth=4, features=PARAMS.model_dump())
    model.fit(TrainingData.cut(events, posts, users, until))
    t = START + 11 * DAY
    later = events.select(events.timestamp >= t)
    flood = Interactions.from_arrays(  # everyone likes post 1 right after t
        np.r_[events.user_id, np.unique(later.user_id)],
        np.r_[events.post_id, np.ones(len(np.unique(later.user_id)), np.int64)],
        np.r_[events.timestamp, np.full(len(np.unique(later.user_id)), t + 1)],
        np.r_[events.is_like, np.ones(len(np.unique(later.user_id)), bool)],
    )
    cut = LikeHistory(posts.index.to_numpy(), events.before(t).likes())
    with_future = LikeHistory(posts.index.to_numpy(), flood.likes())
    for user in (100, 150, 219, 999):
        assert np.array_equal(
            model.recommend(user, t, 5, cut), model.recommend(user, t, 5, with_future)
        )


def test_snapshots_hold_only_events_before_their_checkpoint() -> None:
    events, posts, users = small_feed()
    until = START + 10 * DAY
    tables = build_tables(events.before(until), posts, users, PARAMS, until=until)
    assert tables.checkpoints[-1] == until
    for s, checkpoint in enumerate(tables.checkpoints):
        seen = events.before(int(checkpoint))
        assert tables.post_likes[s].sum() == seen.is_like.sum()
        assert tables.user_views[s].sum() == (~seen.is_like).sum()
    assert tables.snapshot_at(np.array([START - 1, until - 1, until + 10**6])).tolist() == [
        0,
        len(tables.checkpoints) - 2,
        len(tables.checkpoints) - 1,
    ]


def test_saved_tables_load_identically(tmp_path: pytest.TempPathFactory) -> None:
    events, posts, users = small_feed()
    until = START + 10 * DAY
    tables = build_tables(events.before(until), posts, users, PARAMS, until=until)
    tables.save(tmp_path / "t")  # type: ignore[operator]
    loaded = FeatureTables.load(tmp_path / "t")  # type: ignore[operator]
    likes = events.likes()
    assert np.array_equal(_serving(tables, likes, 120, until), _serving(loaded, likes, 120, until))
    assert loaded.vocab == tables.vocab
