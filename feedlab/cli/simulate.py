"""``feedlab simulate``: simulated feed clients drive the running service over simulated days.

Each visit asks ``GET /post/recommendations/`` with ``time`` = the simulated time. With the
synthetic ground truth, the user then views every shown post and likes some of them
(``POST /feed/actions``, each with an event id, so retries never double-count). With
``--replay``, likes are the user's real likes already in the database: only the requests
are sent, and a shown post counts as liked when the user really liked it within the window.
"""

import json
import time as clock
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import typer
from tqdm import tqdm

from experiment.simulation import DAY, ReplayLikes, TruthLikes, Visit, parse_effects, plan_day
from feedlab.cli.common import engine_from_settings, fail
from feedlab.settings import get_settings

RETRIES = 3


@dataclass
class ArmTally:
    requests: int = 0
    users: set[int] = field(default_factory=set)
    views: int = 0
    likes: int = 0
    requests_with_like: int = 0


@dataclass(frozen=True)
class Outcome:
    """What one visit did: the arm served, posts viewed and liked, or an error."""

    user_id: int
    arm: str = ""
    views: int = 0
    likes: int = 0
    error: str = ""


class Feed:
    """The service's public endpoints, retried on connection errors and 5xx."""

    def __init__(self, base_url: str, concurrency: int) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = httpx.Client(base_url=base_url, timeout=30, limits=limits)

    def recommend(self, visit: Visit, limit: int) -> tuple[str, np.ndarray]:
        params: dict[str, str | int] = {"id": visit.user_id, "time": visit.iso_time, "limit": limit}
        body = self._call(lambda: self.http.get("/post/recommendations/", params=params)).json()
        return body["exp_group"], np.array([p["id"] for p in body["recommendations"]], np.int64)

    def act(self, event_id: str, user_id: int, post_id: int, action: str, at: int) -> None:
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        payload = {"user_id": user_id, "post_id": post_id, "action": action, "time": when}
        self._call(lambda: self.http.post("/feed/actions", json={**payload, "event_id": event_id}))

    def _call(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        for attempt in range(RETRIES):
            try:
                response = send()
            except httpx.TransportError:
                if attempt == RETRIES - 1:
                    raise
            else:
                if response.status_code < 500 or attempt == RETRIES - 1:
                    response.raise_for_status()
                    return response
            clock.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")


def simulate(
    base_url: str = typer.Option("http://127.0.0.1:8000", "--base-url", help="The service."),
    users: int = typer.Option(1000, "--users", min=1, help="Simulated users (a seeded sample)."),
    days: int = typer.Option(14, "--days", min=1, help="Simulated days."),
    start: str | None = typer.Option(
        None, "--start", help="First day (ISO date, UTC); default: the day after the data."
    ),
    rate: float = typer.Option(
        1.0, "--requests-per-user-day", min=0, help="Mean visits per user and day."
    ),
    limit: int = typer.Option(5, "--limit", min=1, max=100, help="Posts per request."),
    effect: list[str] = typer.Option(
        [], "--effect", help="ARM=FACTOR: multiply like probability in ARM (repeatable)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of users, visits and likes."),
    concurrency: int = typer.Option(8, "--concurrency", min=1, max=256, help="Parallel clients."),
    truth_dir: Path | None = typer.Option(
        None, "--truth", help="Synthetic ground truth; default $FEEDLAB_ARTIFACTS/synthetic_truth."
    ),
    replay: bool = typer.Option(
        False, "--replay", help="Real data: replay users' real likes from the database."
    ),
    window: int = typer.Option(3600, "--window", min=1, help="Replay: seconds a like counts."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the summary here."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Simulate feed clients against the running service and summarise likes per arm."""
    try:
        effects = parse_effects(effect)
    except ValueError as error:
        raise fail(f"--effect: {error}") from None
    if replay and effects:
        raise fail("--effect needs the synthetic ground truth: real likes cannot be changed")
    feed = Feed(base_url.rstrip("/"), concurrency)
    try:
        feed.http.get("/health")
    except httpx.HTTPError as error:
        raise fail(
            f"--base-url: no service at {base_url} ({error}); start `feedlab serve`"
        ) from None
    if replay:
        first_day = _parse_day(start, None)
        plan, run_visit = _replay_plan(feed, first_day, days, users, window, seed, limit)
    else:
        truth_model = _truth(truth_dir, effects)
        first_day = _parse_day(start, _day_after_data(truth_model))
        plan, run_visit = _truth_plan(feed, truth_model, first_day, days, users, rate, seed, limit)
    typer.echo(
        f"simulating {days} day(s) from {first_day.isoformat()} against {base_url} "
        f"({'replayed real likes' if replay else 'synthetic ground truth'}"
        + (f", effects {effects}" if effects else "")
        + ")"
    )
    tallies, errors = _run(plan, run_visit, concurrency, progress)
    summary = _summary(tallies, errors, days, first_day, effects, seed)
    _print_summary(summary)
    if json_path is not None:
        json_path.write_text(json.dumps(summary, indent=2) + "\n")
    if errors:
        raise typer.Exit(code=1)


VisitRunner = Callable[[int, int, Visit], Outcome]


def _truth_plan(
    feed: Feed,
    likes: TruthLikes,
    first_day: date,
    days: int,
    users: int,
    rate: float,
    seed: int,
    limit: int,
) -> tuple[Iterable[list[Visit]], VisitRunner]:
    rng = np.random.default_rng(seed)
    population = likes.users()
    chosen = np.sort(rng.choice(population, min(users, len(population)), replace=False))
    per_day = likes.visits_per_day(chosen, rate)
    day0 = int(datetime.combine(first_day, datetime.min.time(), UTC).timestamp())
    plan = (
        plan_day(
            day_start=day0 + d * DAY,
            user_ids=chosen,
            visits_per_day=per_day,
            hour_weights=likes.hour_weights(),
            rng=np.random.default_rng([seed, d]),
        )
        for d in range(days)
    )

    def run(day: int, index: int, visit: Visit) -> Outcome:
        arm, shown = feed.recommend(visit, limit)
        visit_rng = np.random.default_rng([seed, day, index])
        liked = likes.liked(visit.user_id, shown, visit.time, arm, visit_rng)
        for position, (post, like) in enumerate(zip(shown.tolist(), liked.tolist(), strict=True)):
            seen_at = visit.time + 2 + 3 * position
            event = f"sim-{seed}-{day}-{index}-{position}"
            feed.act(f"{event}-view", visit.user_id, post, "view", seen_at)
            if like:
                liked_at = seen_at + int(visit_rng.integers(5, 120))
                feed.act(f"{event}-like", visit.user_id, post, "like", liked_at)
        return Outcome(visit.user_id, arm, views=len(shown), likes=int(liked.sum()))

    return plan, run


def _replay_plan(
    feed: Feed, first_day: date, days: int, users: int, window: int, seed: int, limit: int
) -> tuple[Iterable[list[Visit]], VisitRunner]:
    from feeddata.replay import events_between

    begin = datetime.combine(first_day, datetime.min.time())
    end = begin + timedelta(days=days)
    events = events_between(
        bind=engine_from_settings(), start=begin, end=end + timedelta(seconds=window)
    )
    begin_s, end_s = (int(t.replace(tzinfo=UTC).timestamp()) for t in (begin, end))
    views = events.select(~events.is_like & (events.timestamp < end_s))
    if not len(views):
        raise fail(f"--start: no views in the database from {first_day} for {days} day(s)")
    # a visit is a user's first view in each clock hour, as in the offline evaluation
    hours = views.timestamp // 3600
    _, first = np.unique(np.stack([views.user_id, hours]), axis=1, return_index=True)
    population = np.unique(views.user_id)
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(population, min(users, len(population)), replace=False).tolist())
    visits = [
        Visit(int(views.user_id[i]), int(views.timestamp[i]))
        for i in np.sort(first)
        if int(views.user_id[i]) in chosen
    ]
    liked = events.select(events.is_like)
    by_user: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for user in np.unique(liked.user_id):
        mask = liked.user_id == user
        by_user[int(user)] = (liked.post_id[mask], liked.timestamp[mask])
    replay = ReplayLikes(by_user, window)
    plan = (
        [v for v in visits if begin_s + d * DAY <= v.time < begin_s + (d + 1) * DAY]
        for d in range(days)
    )

    def run(day: int, index: int, visit: Visit) -> Outcome:
        arm, shown = feed.recommend(visit, limit)
        hits = replay.liked(visit.user_id, shown, visit.time)
        return Outcome(visit.user_id, arm, views=len(shown), likes=int(hits.sum()))

    return plan, run


def _run(
    plan: Iterable[list[Visit]],
    run_visit: VisitRunner,
    concurrency: int,
    progress: bool,
) -> tuple[dict[str, ArmTally], list[str]]:
    tallies: dict[str, ArmTally] = defaultdict(ArmTally)
    errors: list[str] = []

    def guarded(day: int, index: int, visit: Visit) -> Outcome:
        try:
            return run_visit(day, index, visit)
        except (httpx.HTTPError, KeyError, ValueError) as error:
            return Outcome(
                visit.user_id, error=f"user {visit.user_id} at {visit.iso_time}: {error}"
            )

    with (
        ThreadPoolExecutor(concurrency) as pool,
        tqdm(unit=" requests", desc="simulate", disable=not progress) as bar,
    ):
        for day, visits in enumerate(plan):
            bar.set_postfix(day=day + 1)
            outcomes = pool.map(lambda iv: guarded(day, *iv), enumerate(visits))  # noqa: B023
            for outcome in outcomes:
                bar.update(1)
                if outcome.error:
                    errors.append(outcome.error)
                    continue
                tally = tallies[outcome.arm]
                tally.requests += 1
                tally.users.add(outcome.user_id)
                tally.views += outcome.views
                tally.likes += outcome.likes
                tally.requests_with_like += outcome.likes > 0
    return dict(tallies), errors


def _summary(
    tallies: dict[str, ArmTally],
    errors: list[str],
    days: int,
    first_day: date,
    effects: dict[str, float],
    seed: int,
) -> dict[str, object]:
    arms = {}
    for arm in sorted(tallies):
        t = tallies[arm]
        arms[arm] = {
            **{k: v for k, v in asdict(t).items() if k != "users"},
            "users": len(t.users),
            "likes_per_request": t.likes / t.requests if t.requests else 0.0,
            "share_of_requests_with_a_like": t.requests_with_like / t.requests
            if t.requests
            else 0.0,
        }
    return {
        "start": first_day.isoformat(),
        "days": days,
        "seed": seed,
        "effects": effects,
        "requests": sum(t.requests for t in tallies.values()),
        "errors": len(errors),
        "first_errors": errors[:5],
        "arms": arms,
    }


def _print_summary(summary: dict[str, object]) -> None:
    arms = summary["arms"]
    assert isinstance(arms, dict)
    typer.echo(f"\n{summary['requests']:,} requests, {summary['errors']} errors")
    typer.echo(f"{'arm':<10}{'users':>8}{'requests':>10}{'views':>9}{'likes':>8}{'hit share':>11}")
    for arm, row in arms.items():
        typer.echo(
            f"{arm:<10}{row['users']:>8,}{row['requests']:>10,}{row['views']:>9,}"
            f"{row['likes']:>8,}{row['share_of_requests_with_a_like']:>11.3f}"
        )
    for error in summary["first_errors"]:  # type: ignore[attr-defined]
        typer.echo(f"error: {error}", err=True)


def _truth(truth_dir: Path | None, effects: dict[str, float]) -> TruthLikes:
    from feeddata.sources.synthetic_truth import GroundTruth

    directory = truth_dir or get_settings().artifacts / "synthetic_truth"
    try:
        return TruthLikes(GroundTruth.load(directory), effects)
    except (FileNotFoundError, ValueError) as error:
        raise fail(f"--truth: {error}; for real data use --replay") from None


def _day_after_data(likes: TruthLikes) -> date:
    config = likes.truth.config
    return date.fromisoformat(config["start"]) + timedelta(days=int(config["days"]))


def _parse_day(value: str | None, default: date | None) -> date:
    if value is None:
        if default is None:
            raise fail("--start is required with --replay (the first day to replay)")
        return default
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        raise fail(f"--start: {value!r} is not an ISO date such as 2021-12-30") from None
