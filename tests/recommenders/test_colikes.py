"""Co-likes snapshots of the neural model: EASE scores, truncated, and time-safe."""

import numpy as np

from recommenders.neural.colikes import CoLikes
from recommenders.peers import ease_weights

N_USERS, N_POSTS = 40, 12


def random_likes(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 300
    return (
        rng.integers(0, N_USERS, n),
        rng.integers(0, N_POSTS, n),
        np.sort(rng.integers(1_000, 2_000, n)),
    )


def test_with_every_neighbour_the_scores_are_the_ease_scores() -> None:
    row, post, ts = random_likes()
    co = CoLikes.fit(row, post, ts, N_POSTS, np.array([1_500]), k=N_POSTS, l2=5.0)
    before = ts < 1_500
    dense = ease_weights(row[before], post[before], N_POSTS, 5.0)
    liked = np.array([0, 3, 3, 7])  # a user who liked post 3 twice counts it twice
    scores = co.scores(np.array([0]), np.zeros(len(liked), np.int64), liked)
    expected = dense[liked].sum(axis=0)
    np.testing.assert_allclose(scores[0], expected, rtol=1e-5, atol=1e-6)


def test_truncation_keeps_the_strongest_weights() -> None:
    row, post, ts = random_likes()
    co = CoLikes.fit(row, post, ts, N_POSTS, np.array([2_000]), k=3, l2=5.0)
    dense = ease_weights(row, post, N_POSTS, 5.0)
    kept = np.sort(np.abs(co.weights[0]), axis=1)
    strongest = np.sort(np.abs(dense), axis=1)[:, -3:]
    np.testing.assert_allclose(kept, strongest, rtol=1e-6)
    picked = np.take_along_axis(dense, co.neighbours[0].astype(np.int64), axis=1)
    np.testing.assert_array_equal(picked, co.weights[0])


def test_a_snapshot_reads_only_the_likes_before_its_checkpoint() -> None:
    row, post, ts = random_likes()
    checkpoints = np.array([1_400, 1_700])
    co = CoLikes.fit(row, post, ts, N_POSTS, checkpoints, k=5, l2=5.0)
    later = ts >= 1_400
    shuffled = np.where(later, np.roll(post, 7), post)  # rewrite every like from 1,400 on
    other = CoLikes.fit(row, shuffled, ts, N_POSTS, checkpoints, k=5, l2=5.0)
    np.testing.assert_array_equal(co.weights[0], other.weights[0])
    assert not np.array_equal(co.weights[1], other.weights[1])


def test_times_before_the_first_checkpoint_get_no_scores() -> None:
    row, post, ts = random_likes()
    co = CoLikes.fit(row, post, ts, N_POSTS, np.array([1_400, 1_700]), k=5, l2=5.0)
    assert co.at(np.array([1_399, 1_400, 1_699, 1_700, 9_999])).tolist() == [-1, 0, 0, 1, 1]
    scores = co.scores(np.array([-1, 1]), np.array([0, 1]), np.array([2, 2]))
    assert not scores[0].any()
    assert scores[1].any()


def test_off_gives_zeros() -> None:
    co = CoLikes.empty(N_POSTS)
    assert co.at(np.array([5])).tolist() == [-1]
    scores = co.scores(np.array([-1]), np.array([0]), np.array([1]))
    assert scores.shape == (1, N_POSTS)
    assert not scores.any()
