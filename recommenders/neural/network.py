"""The neural model as a torch module, used for training (and by the serving benchmark to
compare torch with the numpy scorer of :mod:`recommenders.neural.scoring`).

Score of post j for a request (user u, time t), see :mod:`recommenders.neural.model`:

    post_j  = id_j + W_text text_j + topic_j                          (d)
    h_i     = post_{like i} + age_band_i                              (last likes before t)
    c       = sum of profile embeddings + hour-of-day embedding        (d)
    pooled  = multi-head attention with query c over [null; h_i]       (d)
    u       = MLP([c, pooled, mean_i h_i, log1p(likes)])               (d)
    score_j = u . post_j + MLP([post_features_j(t), cross_features_uj(t)])
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from recommenders.neural.inputs import N_AGES, N_CROSS_FEATURES, N_POST_FEATURES
from recommenders.neural.shape import Shape


@dataclass
class Batch:
    """Model inputs for B requests; ``pop`` holds the popularity features of the batch's
    distinct hours and ``pop_row`` picks each request's row."""

    hist: torch.Tensor  # long (B, L), padded with Shape.pad
    ages: torch.Tensor  # long (B, L)
    n_likes: torch.Tensor  # float (B,)
    profile: torch.Tensor  # long (B, len(PROFILE_COLUMNS))
    hour: torch.Tensor  # long (B,)
    pop: torch.Tensor  # float (H, C, N_POST_FEATURES)
    pop_row: torch.Tensor  # long (B,)
    cross: torch.Tensor  # float (B, C, N_CROSS_FEATURES)
    candidates: torch.Tensor | None = None  # long (C,): the posts scored; None for all


class Net(nn.Module):
    """See the module docstring."""

    feature_shift: torch.Tensor
    feature_scale: torch.Tensor

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape
        d = shape.dims
        if d % shape.heads:
            raise ValueError(f"dims ({d}) must be a multiple of heads ({shape.heads})")
        self.item = nn.Embedding(shape.n_posts + 1, d)
        self.text = nn.Linear(shape.text_dims, d, bias=False)
        self.topic = nn.Embedding(max(shape.n_topics, 1), d)
        self.age = nn.Embedding(N_AGES, d)
        self.profile = nn.ModuleList(nn.Embedding(size, d) for size in shape.profile_sizes)
        self.hour = nn.Embedding(24, d)
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.null_key = nn.Parameter(torch.zeros(d))
        self.null_value = nn.Parameter(torch.zeros(d))
        self.user = nn.Sequential(nn.Linear(3 * d + 1, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        width = N_POST_FEATURES + N_CROSS_FEATURES
        self.head_in = nn.Linear(width, shape.head_dims)
        self.head_out = nn.Linear(shape.head_dims, 1)
        # features are standardised with statistics of the training examples (set_scaling)
        self.register_buffer("feature_shift", torch.zeros(width))
        self.register_buffer("feature_scale", torch.ones(width))
        for table in (self.item, self.topic, self.age, self.hour, *self.profile):
            nn.init.normal_(table.weight, std=0.05)

    @torch.no_grad()
    def set_scaling(self, batches: list["Batch"]) -> None:
        """Standardise the head's inputs with the mean and deviation over ``batches``."""
        rows = [
            torch.cat([b.pop[b.pop_row], b.cross], -1).reshape(-1, self.feature_shift.shape[0])
            for b in batches
        ]
        features = torch.cat(rows)
        self.feature_shift.copy_(features.mean(0))
        self.feature_scale.copy_(features.std(0).clamp(min=1e-3))

    def posts(self, text: torch.Tensor, topic: torch.Tensor) -> torch.Tensor:
        """Post vectors (P, d) from text embeddings (P, text_dims) and topic codes (P,)."""
        vectors = self.topic(topic)
        if self.shape.ids:
            vectors = vectors + self.item.weight[: self.shape.n_posts]
        return vectors + self.text(text) if self.shape.text else vectors

    def users(self, posts: torch.Tensor, batch: Batch) -> torch.Tensor:
        """User vectors (B, d)."""
        d, heads = self.shape.dims, self.shape.heads
        padded = torch.cat([posts, torch.zeros(1, d)])
        h = padded[batch.hist] + self.age(batch.ages)  # (B, L, d)
        mask = batch.hist != self.shape.pad
        context = self.hour(batch.hour)
        for j, table in enumerate(self.profile if self.shape.profile else []):
            context = context + table(batch.profile[:, j])
        count = mask.sum(1, keepdim=True).clamp(min=1)
        mean = (h * mask.unsqueeze(-1)).sum(1) / count
        pooled = torch.zeros_like(context)
        if self.shape.attention:
            b, n = h.shape[0], h.shape[1] + 1
            keys = torch.cat([self.null_key.expand(b, 1, d), self.key(h)], 1)
            values = torch.cat([self.null_value.expand(b, 1, d), self.value(h)], 1)
            q = self.query(context).view(b, heads, 1, d // heads)
            k = keys.view(b, n, heads, d // heads).transpose(1, 2)
            v = values.view(b, n, heads, d // heads).transpose(1, 2)
            logits = (q @ k.transpose(-1, -2)).squeeze(2) / (d // heads) ** 0.5  # (B, H, n)
            allowed = torch.cat([torch.ones(b, 1, dtype=torch.bool), mask], 1)
            logits = logits.masked_fill(~allowed.unsqueeze(1), float("-inf"))
            weights = torch.softmax(logits, -1).unsqueeze(-1)  # (B, H, n, 1)
            pooled = (weights * v).sum(2).reshape(b, d)
        likes = torch.log1p(batch.n_likes).unsqueeze(1)
        return self.user(torch.cat([context, pooled, mean, likes], 1))

    def forward(self, posts: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Scores (B, C) of the candidate posts (all by default) for each request."""
        scored = posts if batch.candidates is None else posts[batch.candidates]
        scores = torch.zeros(len(batch.hist), len(scored))
        if self.shape.tower:
            scores = self.users(posts, batch) @ scored.T
        if self.shape.features:
            # the head's first layer on [post features, crosses], with the post part computed
            # once per distinct hour of the batch rather than once per request
            first = self.head_in
            shift = self.feature_shift.split([N_POST_FEATURES, N_CROSS_FEATURES])
            scale = self.feature_scale.split([N_POST_FEATURES, N_CROSS_FEATURES])
            w_post, w_cross = first.weight.split([N_POST_FEATURES, N_CROSS_FEATURES], 1)
            pop = (batch.pop - shift[0]) / scale[0]
            cross = (batch.cross - shift[1]) / scale[1]
            hidden = functional.linear(pop, w_post, first.bias)[batch.pop_row]
            hidden = torch.relu(hidden + functional.linear(cross, w_cross))
            scores = scores + self.head_out(hidden).squeeze(-1)
        return scores


def export(net: Net) -> dict[str, np.ndarray]:
    """The weights as float32 numpy arrays, by parameter name."""
    return {name: value.detach().numpy().copy() for name, value in net.state_dict().items()}


def restore(shape: Shape, weights: dict[str, np.ndarray]) -> Net:
    """A module with ``weights`` (from :func:`export`), in eval mode."""
    net = Net(shape)
    net.load_state_dict({name: torch.from_numpy(np.asarray(w)) for name, w in weights.items()})
    return net.eval()


class TorchScorer:
    """The same per-request interface as :class:`~recommenders.neural.scoring.Scorer`, run
    through the torch module (post vectors computed once); kept to measure torch against
    numpy at request time."""

    def __init__(
        self, shape: Shape, weights: dict[str, np.ndarray], text: np.ndarray, topic: np.ndarray
    ) -> None:
        self.net = restore(shape, weights)
        with torch.no_grad():
            self.posts = self.net.posts(
                torch.from_numpy(np.array(text, np.float32)),
                torch.from_numpy(np.array(topic, np.int64)),
            )

    @torch.no_grad()
    def scores(
        self,
        hist: np.ndarray,
        ages: np.ndarray,
        n_likes: int,
        profile: np.ndarray,
        hour: int,
        features: np.ndarray,
    ) -> np.ndarray:
        n_posts = self.net.shape.n_posts
        pop, cross = np.split(np.asarray(features, np.float32), [N_POST_FEATURES], axis=1)
        batch = Batch(
            hist=torch.from_numpy(np.array(hist, np.int64)[None]),
            ages=torch.from_numpy(np.array(ages, np.int64)[None]),
            n_likes=torch.tensor([float(n_likes)]),
            profile=torch.from_numpy(np.array(profile, np.int64)[None]),
            hour=torch.tensor([int(hour)]),
            pop=torch.from_numpy(np.ascontiguousarray(pop).reshape(1, n_posts, -1)),
            pop_row=torch.zeros(1, dtype=torch.long),
            cross=torch.from_numpy(np.ascontiguousarray(cross)[None]),
        )
        return self.net(self.posts, batch)[0].numpy()
