import threading
from typing import Any

import numpy as np
import pytest

from feeddata.interactions import Interactions
from recommenders.history import LikeHistory


def _random_likes(n: int, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    return Interactions.from_arrays(
        rng.integers(1, 30, n),
        rng.integers(100, 140, n),
        rng.integers(0, 10_000, n),
        np.ones(n, bool),
    )


def _brute_counts(likes: Interactions, post_ids: np.ndarray, time: int) -> np.ndarray:
    before = likes.timestamp < time
    return np.array([np.sum(before & (likes.post_id == p)) for p in post_ids])


@pytest.mark.parametrize("checkpoint", [1, 2, 7, 64, 250, 500, 10_000])
def test_like_counts_match_a_brute_force_count(checkpoint: int) -> None:
    likes = _random_likes(500)
    post_ids = np.arange(100, 140)
    history = LikeHistory(post_ids, likes, checkpoint=checkpoint)
    for time in [-1, 0, 1, 17, 2500, 5000, 9999, 10_000, 20_000, *likes.timestamp[::37].tolist()]:
        assert (
            history.like_counts_before(time).tolist()
            == _brute_counts(likes, post_ids, time).tolist()
        )


def test_liked_before_and_between_are_strict_and_inclusive() -> None:
    likes = Interactions.from_arrays(
        [1, 1, 1, 2], [10, 11, 12, 10], [100, 200, 300, 150], [True] * 4
    )
    history = LikeHistory(np.array([10, 11, 12]), likes)
    assert history.post_ids[history.liked_before(1, 200)].tolist() == [10]
    assert history.post_ids[history.liked_before(1, 201)].tolist() == [10, 11]
    assert history.post_ids[history.liked_between(1, 200, 300)].tolist() == [11, 12]
    assert history.liked_before(99, 10**9).size == 0


def test_likes_added_while_serving_count_only_after_their_time() -> None:
    likes = _random_likes(200, seed=1)
    post_ids = np.arange(100, 140)
    history = LikeHistory(post_ids, likes, checkpoint=16, overlay_limit=25)
    extra = _random_likes(60, seed=2)
    for u, p, t in zip(extra.user_id, extra.post_id, extra.timestamp, strict=True):
        assert history.add_like(int(u), int(p), int(t))
    assert not history.add_like(1, 999, 5)  # not in the catalogue
    everything = _joined(likes, extra)
    assert history.n_likes == len(everything)
    _assert_answers(history, everything)


def test_likes_of_posts_outside_the_catalogue_are_left_out() -> None:
    likes = _random_likes(300, seed=3)
    post_ids = np.arange(100, 120)  # half of the liked posts are unknown
    history = LikeHistory(post_ids, likes, checkpoint=32)
    known = np.isin(likes.post_id, post_ids)
    assert history.n_likes == int(known.sum())
    for time in [0, 4000, 10_000]:
        expected = _brute_counts(likes, post_ids, time)
        assert history.like_counts_before(time).tolist() == expected.tolist()
    for user in (1, 7, 29):
        in_time_order = likes.post_id[(likes.user_id == user) & known].tolist()
        assert history.post_ids[history.liked_before(user, 10**9)].tolist() == in_time_order


def test_unsorted_catalogue_is_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        LikeHistory(np.array([3, 1, 2]), _random_likes(5))


class _PausedMerge(LikeHistory):
    """Stops a merge's build (not the first one, at start) until the test lets it go."""

    building = threading.Event()
    resume = threading.Event()

    def _build(self, users: np.ndarray, idx: np.ndarray, ts: np.ndarray) -> Any:
        if hasattr(self, "_merged"):
            self.building.set()
            assert self.resume.wait(10)
        return super()._build(users, idx, ts)


def test_a_merge_builds_without_the_lock_and_keeps_every_like() -> None:
    likes = _random_likes(200, seed=4)
    post_ids = np.arange(100, 140)
    history = _PausedMerge(post_ids, likes, checkpoint=16, overlay_limit=30)
    first, during = _random_likes(30, seed=5), _random_likes(12, seed=6)

    def fill_the_overlay() -> None:
        for u, p, t in zip(first.user_id, first.post_id, first.timestamp, strict=True):
            history.add_like(int(u), int(p), int(t))

    merger = threading.Thread(target=fill_the_overlay)
    merger.start()
    assert history.building.wait(10)
    # The 30th like is merging: readers answer at once, from the old arrays and the overlay.
    so_far = _joined(likes, first)
    for time in [0, 5000, 10_001]:
        assert (
            history.like_counts_before(time).tolist()
            == _brute_counts(so_far, post_ids, time).tolist()
        )
    for u, p, t in zip(during.user_id, during.post_id, during.timestamp, strict=True):
        assert history.add_like(int(u), int(p), int(t))  # no second merge starts
    history.resume.set()
    merger.join(10)
    assert not merger.is_alive()
    everything = _joined(so_far, during)
    assert history.n_likes == len(everything)
    assert history._extra_n == len(during)  # what arrived during the build stays overlaid
    _assert_answers(history, everything)


class _FailingMerge(LikeHistory):
    """Runs out of memory in its first merge."""

    failures = 0

    def _build(self, users: np.ndarray, idx: np.ndarray, ts: np.ndarray) -> Any:
        if hasattr(self, "_merged") and not self.failures:
            self.failures += 1
            raise MemoryError("no room for a second copy")
        return super()._build(users, idx, ts)


def test_a_failed_merge_keeps_the_likes_and_tries_again_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    likes = _random_likes(200, seed=7)
    post_ids = np.arange(100, 140)
    history = _FailingMerge(post_ids, likes, checkpoint=16, overlay_limit=10)
    extra = _random_likes(25, seed=8)
    added = [
        history.add_like(int(u), int(p), int(t))
        for u, p, t in zip(extra.user_id, extra.post_id, extra.timestamp, strict=True)
    ]
    assert all(added)  # the 10th like's merge failed, and it was recorded all the same
    assert "merging 10 likes into the like history failed" in caplog.text
    assert history._extra_n == 5  # merged at the 20th like, ten after the failure
    everything = _joined(likes, extra)
    assert history.n_likes == len(everything)
    _assert_answers(history, everything)


def _joined(a: Interactions, b: Interactions) -> Interactions:
    return Interactions.from_arrays(
        np.r_[a.user_id, b.user_id],
        np.r_[a.post_id, b.post_id],
        np.r_[a.timestamp, b.timestamp],
        np.ones(len(a) + len(b), bool),
    )


def _assert_answers(history: LikeHistory, everything: Interactions) -> None:
    """Counts and users' likes at several times are those of ``everything``."""
    for time in [0, 3000, 7000, 10_001]:
        expected = _brute_counts(everything, history.post_ids, time)
        assert history.like_counts_before(time).tolist() == expected.tolist()
        for user in (1, 5, 29):
            mask = (everything.user_id == user) & (everything.timestamp < time)
            got = sorted(history.post_ids[history.liked_before(user, time)].tolist())
            assert got == sorted(everything.post_id[mask].tolist())
