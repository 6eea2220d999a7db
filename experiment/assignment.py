"""Deterministic assignment of users to experiment arms by a salted hash.

A user's bucket is a pure function of (salt, user id), the same in every process and in
every language; arms own fixed, contiguous bucket ranges in their configured order.
"""

import hashlib
from dataclasses import dataclass

BUCKETS = 10_000


def bucket(salt: str, user_id: int) -> int:
    """The bucket (0-9999) of ``user_id`` under ``salt``: the first 8 bytes of
    ``sha256(f"{salt}:{user_id}")`` as a big-endian unsigned integer, modulo 10,000.

    >>> [bucket("feed-ab-2026", u) for u in (1, 7, 42, 200, 163204)]
    [7047, 4000, 8625, 3850, 5982]
    >>> bucket("x", 1), bucket("x", 42)
    (3646, 5765)
    """
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True)
class BucketRange:
    """Buckets ``start`` (inclusive) to ``stop`` (exclusive) owned by one arm, of which the
    first ``covered`` are in the experiment."""

    arm: str
    start: int
    stop: int
    covered: int

    def __contains__(self, value: int) -> bool:
        return self.start <= value < self.stop


def bucket_ranges(weights: dict[str, int], coverage: float = 100.0) -> tuple[BucketRange, ...]:
    """Contiguous ranges sized by ``weights`` (whole percents summing to 100), in order.

    ``coverage`` (percent) keeps the first part of every range in the experiment, so
    raising or lowering it only adds or removes users and never moves one between arms.

    >>> ranges = bucket_ranges({"control": 50, "test": 50}, coverage=10)
    >>> [(r.arm, r.start, r.stop, r.covered) for r in ranges]
    [('control', 0, 5000, 500), ('test', 5000, 10000, 500)]
    """
    if sum(weights.values()) != 100:
        raise ValueError(f"arm weights must sum to 100, got {sum(weights.values())}")
    if not 0 < coverage <= 100:
        raise ValueError(f"coverage must be in (0, 100] percent, got {coverage}")
    ranges, start = [], 0
    for arm, weight in weights.items():
        stop = start + weight * BUCKETS // 100
        ranges.append(BucketRange(arm, start, stop, round((stop - start) * coverage / 100)))
        start = stop
    return tuple(ranges)


def arm_of_bucket(ranges: tuple[BucketRange, ...], value: int) -> str | None:
    """The arm whose covered buckets hold ``value``; None outside coverage.

    >>> ranges = bucket_ranges({"control": 50, "test": 50}, 10)
    >>> arm_of_bucket(ranges, 499), arm_of_bucket(ranges, 500), arm_of_bucket(ranges, 5000)
    ('control', None, 'test')
    """
    for r in ranges:
        if value in r:
            return r.arm if value < r.start + r.covered else None
    raise ValueError(f"bucket {value} is outside 0-{BUCKETS - 1}")
