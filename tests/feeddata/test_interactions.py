import numpy as np

from feeddata.interactions import Interactions


def test_events_are_sorted_by_time_keeping_the_order_of_ties() -> None:
    events = Interactions.from_arrays(
        user_id=[1, 2, 3, 4], post_id=[10, 20, 30, 40], timestamp=[5, 3, 5, 1], is_like=[1, 0, 0, 1]
    )
    assert events.timestamp.tolist() == [1, 3, 5, 5]
    assert events.user_id.tolist() == [4, 2, 1, 3]
    assert events.is_like.tolist() == [True, False, True, False]
    assert events.target.tolist() == [0, 0, 0, 0]


def test_arrays_already_in_time_order_are_kept_without_a_copy() -> None:
    user = np.array([3, 1, 2], np.int64)
    ts = np.array([1, 1, 9], np.int64)
    events = Interactions.from_arrays(user, user * 10, ts, np.ones(3, bool))
    assert np.shares_memory(events.user_id, user)
    assert np.shares_memory(events.timestamp, ts)
    # another dtype cannot be kept as it is
    converted = Interactions.from_arrays(user.astype(np.int32), user, ts, np.ones(3, bool))
    assert converted.user_id.dtype == np.int64
    assert converted.user_id.tolist() == [3, 1, 2]
