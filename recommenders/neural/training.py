"""Training examples and the training loop of the neural model.

An example is a request-like anchor: a view (user u at time t; the likes when the feed has
no views) whose user liked at least one post in ``[t, t + window]``, the hitrate window of
the evaluation. Its inputs are what serving would know at t (see :mod:`inputs`); its
targets are all the posts u liked in the window. The loss is a softmax over the whole
catalogue (posts u liked before t masked out, as serving excludes them), by default minus
the log of its mass on the targets (:func:`_loss`): the model learns to rank the
catalogue for the next hour so that one of them comes first, which is the served task.
The latest ``validation_share`` of examples by time is the early-stopping slice; the
chosen weights then train ``final_passes`` times over it, as it is the part of the
training period closest to the requests the model will serve.
"""

import copy
import itertools
import sys
import time as clock
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from recommenders.neural.examples import Examples, Loss, Sources, batch_arrays
from recommenders.neural.network import Batch, Net

_MASKED = -1e9


def make_batch(
    src: Sources, ex: Examples, negatives: int = 0, rng: np.random.Generator | None = None
) -> tuple[Batch, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`examples.batch_arrays` as tensors: inputs, the mask of posts liked before t,
    the targets (float) and the examples' weights."""
    arrays = batch_arrays(src, ex, negatives, rng)
    batch = Batch(
        hist=torch.from_numpy(arrays.hist),
        ages=torch.from_numpy(arrays.ages),
        n_likes=torch.from_numpy(arrays.n_likes),
        profile=torch.from_numpy(arrays.profile),
        hour=torch.from_numpy(arrays.hour),
        pop=torch.from_numpy(arrays.pop),
        pop_row=torch.from_numpy(arrays.pop_row),
        cross=torch.from_numpy(arrays.cross),
        candidates=None if arrays.candidates is None else torch.from_numpy(arrays.candidates),
    )
    target = torch.from_numpy(arrays.target.astype(np.float32))
    return batch, torch.from_numpy(arrays.liked), target, torch.from_numpy(arrays.weight)


def _loss(
    scores: torch.Tensor,
    liked: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    kind: Loss = "any",
) -> torch.Tensor:
    """The weighted mean over examples of a softmax loss over the candidates (posts liked
    before t masked out):

    - "any": -log of the probability mass on the targets, the chance that a draw from the
      model's distribution is one of the posts liked in the window. A hit needs only one
      of them in the top k, and this loss lets the model put its mass on the targets it
      can foresee;
    - "mean": the mean of -log p over the targets, which asks for every target, the
      foreseeable and the unforeseeable alike.

    Examples with no target count zero.
    """
    log_p = torch.log_softmax(scores.masked_fill(liked, _MASKED), dim=1)
    if kind == "any":
        on_targets = torch.logsumexp(log_p.masked_fill(target <= 0, _MASKED), dim=1)
        per_example = -on_targets * (target.sum(1) > 0)
    else:
        per_example = -(log_p * target).sum(1) / target.sum(1).clamp(min=1)
    return (per_example * weight).sum() / weight.sum()


@dataclass(frozen=True)
class Schedule:
    batch_size: int
    learning_rate: float
    weight_decay: float
    max_epochs: int
    check_every: int
    """Examples between validation passes (a "round"; at most one epoch)."""
    patience: int
    """Rounds without a better validation loss before training stops."""
    negatives: int
    seed: int
    final_passes: int = 0
    """After early stopping, passes over the validation slice (the latest examples), so the
    kept weights have also learned from them."""
    loss: Loss = "any"
    """How an example's targets enter the loss (:func:`_loss`)."""


def _batches(n: int, size: int, epochs: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Example positions in batches of ``size``, shuffled anew for each of ``epochs``."""
    for _ in range(epochs):
        order = rng.permutation(n)
        for lo in range(0, n, size):
            yield np.sort(order[lo : lo + size])


def fit_network(
    net: Net,
    text: torch.Tensor,
    topic: torch.Tensor,
    src: Sources,
    train: Examples,
    valid: Examples,
    schedule: Schedule,
    *,
    progress: bool,
    deadline: float | None = None,
) -> dict[str, Any]:
    """AdamW on the training examples with a validation pass every ``check_every`` examples;
    keeps the weights of the best validation hit@5 and stops after ``patience`` rounds
    without improvement (or after ``max_epochs`` passes), or before a round that would end
    after ``deadline`` (a ``time.perf_counter()`` value) if it took as long as the last."""
    rng = np.random.default_rng(schedule.seed)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=schedule.learning_rate, weight_decay=schedule.weight_decay
    )
    if len(train):
        sample = train.part(np.sort(rng.choice(len(train), min(len(train), 256), replace=False)))
        net.set_scaling([make_batch(src, sample, schedule.negatives, rng)[0]])

    def step(examples: Examples) -> float:
        batch, liked, target, weight = make_batch(src, examples, schedule.negatives, rng)
        loss = _loss(net(net.posts(text, topic), batch), liked, target, weight, schedule.loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.item())

    per_round = max(1, -(-min(schedule.check_every, len(train)) // schedule.batch_size))
    total = -(-len(train) // schedule.batch_size) * schedule.max_epochs
    stream = _batches(len(train), schedule.batch_size, schedule.max_epochs, rng)
    best: tuple[float, int, dict[str, torch.Tensor]] = (np.inf, 0, copy.deepcopy(net.state_dict()))
    history: list[dict[str, float]] = []
    done, out_of_time = 0, False
    for round_ in range(1, -(-total // per_round) + 1):
        started = clock.perf_counter()
        if deadline is not None and history and started + history[-1]["seconds"] > deadline:
            out_of_time = True
            if progress:
                print(f"[neural] time budget: no round {round_}", file=sys.stderr, flush=True)
            break
        net.train()
        losses = []
        steps = min(per_round, total - done)
        for picked in tqdm(
            itertools.islice(stream, steps),
            total=steps,
            desc=f"[neural] round {round_}",
            disable=not progress,
            leave=False,
        ):
            losses.append(step(train.part(picked)))
        done += steps
        record = {
            "round": round_,
            "epoch": done * schedule.batch_size / max(len(train), 1),
            "train_loss": float(np.mean(losses)) if losses else 0.0,
            **evaluate_network(net, text, topic, src, valid, schedule.batch_size, schedule.loss),
            "seconds": clock.perf_counter() - started,
        }
        history.append(record)
        if progress:
            cells = "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "round")
            print(f"[neural] round {round_}: {cells}", file=sys.stderr, flush=True)
        # the served metric decides (hit@5); the loss only breaks ties
        badness = -record["valid_hit5"] + 1e-6 * record["valid_loss"] if len(valid) else 0.0
        if not len(valid) or badness < best[0]:
            best = (badness, round_, copy.deepcopy(net.state_dict()))
        elif round_ - best[1] >= schedule.patience:
            break
    net.load_state_dict(best[2])
    result: dict[str, Any] = {
        "best_round": best[1],
        "rounds": len(history),
        "history": history,
        "stopped_by_time_budget": out_of_time,
    }
    if schedule.final_passes > 0 and len(valid):
        net.train()
        for picked in _batches(len(valid), schedule.batch_size, schedule.final_passes, rng):
            step(valid.part(picked))
        after = evaluate_network(net, text, topic, src, valid, schedule.batch_size, schedule.loss)
        result["after_final_passes"] = after
        if progress:
            cells = "  ".join(f"{k} {v:.4f}" for k, v in after.items())
            print(
                f"[neural] after {schedule.final_passes} final pass(es): {cells}",
                file=sys.stderr,
            )
    return result


@torch.no_grad()
def evaluate_network(
    net: Net,
    text: torch.Tensor,
    topic: torch.Tensor,
    src: Sources,
    ex: Examples,
    size: int,
    loss: Loss = "any",
) -> dict[str, float]:
    """Loss and hit@5 (any target in the top 5 after masking) of examples, weighted as in
    training."""
    if not len(ex):
        return {}
    net.eval()
    posts = net.posts(text, topic)
    total, hits = 0.0, 0.0
    for lo in range(0, len(ex), size):
        batch, liked, target, weight = make_batch(src, ex.part(slice(lo, lo + size)))
        scores = net(posts, batch).masked_fill(liked, _MASKED)
        total += float(_loss(scores, liked, target, weight, loss)) * float(weight.sum())
        top = scores.topk(min(5, scores.shape[1]), dim=1).indices
        hits += float(((target.gather(1, top).sum(1) > 0) * weight).sum())
    mass = float(ex.weight.sum())
    return {"valid_loss": total / mass, "valid_hit5": hits / mass}
