"""The neural model's forward pass for one request in numpy, on exported weights.

Serving does not import torch: post vectors are computed once at load, and a request is
the user encoding (a few (L x d) products) plus one (P x d) product and the popularity
term over all posts. ``tests/recommenders/test_neural.py`` checks it against the module.
"""

import numpy as np

from recommenders.neural.shape import Shape


class Scorer:
    """Scores every post for one request from the exported weights of a ``Net``."""

    def __init__(
        self, shape: Shape, weights: dict[str, np.ndarray], text: np.ndarray, topic: np.ndarray
    ) -> None:
        self.shape = shape
        w = {name: np.asarray(value, np.float32) for name, value in weights.items()}
        posts = w["topic.weight"][topic]
        if shape.ids:
            posts = posts + w["item.weight"][: shape.n_posts]
        if shape.text:
            posts = posts + np.asarray(text, np.float32) @ w["text.weight"].T
        self.posts = np.ascontiguousarray(posts, dtype=np.float32)
        self.padded = np.vstack([self.posts, np.zeros((1, shape.dims), np.float32)])
        self.w = w
        n_profile = len(shape.profile_sizes) if shape.profile else 0
        self.profile = [w[f"profile.{j}.weight"] for j in range(n_profile)]
        if shape.features:
            # The head's first layer takes the features' scaling into its weights, stored
            # (features x hidden) in row-major order: at 7,023 posts a request's scoring
            # took 0.58-0.64 ms instead of 0.78 (one thread). The shift is still subtracted
            # first: folding it into the bias would subtract large, nearly equal sums.
            self.head_in = np.ascontiguousarray(
                w["head_in.weight"].T / w["feature_scale"][:, None], dtype=np.float32
            )

    def user(
        self, hist: np.ndarray, ages: np.ndarray, n_likes: int, profile: np.ndarray, hour: int
    ) -> np.ndarray:
        """The user vector (d) of one request."""
        w, d, heads = self.w, self.shape.dims, self.shape.heads
        mask = hist != self.shape.pad
        h = self.padded[hist] + w["age.weight"][ages]
        context = w["hour.weight"][hour].copy()
        for table, code in zip(self.profile, profile[: len(self.profile)], strict=True):
            context += table[code]
        mean = h[mask].sum(0) / max(int(mask.sum()), 1)
        pooled = np.zeros(d, np.float32)
        if self.shape.attention:
            dh = d // heads
            real = h[mask]
            keys = np.vstack([w["null_key"], real @ w["key.weight"].T + w["key.bias"]])
            values = np.vstack([w["null_value"], real @ w["value.weight"].T + w["value.bias"]])
            q = (context @ w["query.weight"].T + w["query.bias"]).reshape(heads, dh)
            k = keys.reshape(-1, heads, dh)
            logits = np.einsum("hd,nhd->hn", q, k) / np.float32(dh**0.5)
            logits -= logits.max(axis=1, keepdims=True)
            attn = np.exp(logits)
            attn /= attn.sum(axis=1, keepdims=True)
            pooled = np.einsum("hn,nhd->hd", attn, values.reshape(-1, heads, dh)).reshape(d)
        likes = np.float32(np.log1p(n_likes))
        x = np.concatenate([context, pooled, mean, [likes]]).astype(np.float32)
        hidden = np.maximum(x @ w["user.0.weight"].T + w["user.0.bias"], 0)
        return np.asarray(hidden @ w["user.2.weight"].T + w["user.2.bias"], np.float32)

    def scores(
        self,
        hist: np.ndarray,
        ages: np.ndarray,
        n_likes: int,
        profile: np.ndarray,
        hour: int,
        features: np.ndarray,
    ) -> np.ndarray:
        """Scores (P,) of every post; ``features`` (P, N_POST_FEATURES + N_CROSS_FEATURES)
        are the post and user x post features."""
        w = self.w
        scores = np.zeros(self.shape.n_posts, np.float32)
        if self.shape.tower:
            scores = self.posts @ self.user(hist, ages, n_likes, profile, hour)
        if self.shape.features:
            hidden = (features - w["feature_shift"]) @ self.head_in
            hidden += w["head_in.bias"]
            np.maximum(hidden, 0, out=hidden)
            scores += hidden @ w["head_out.weight"][0] + w["head_out.bias"][0]
        return scores
