"""Post texts that carry their topic: words from the topic's vocabulary among common words.

Like the course's posts, covid posts are short tweets, movie posts are film reviews and the
other topics are news articles. Each topic's vocabulary is cut into ``SUBTOPICS`` groups;
a post leans on one group, so its words also hint at its place in the latent taste space.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from feeddata.sources.synthetic_vocab import COMMON, TOPIC_WORDS

SUBTOPICS = 4


@dataclass(frozen=True)
class _Style:
    mean_words: float
    sigma: float
    min_words: int
    max_words: int
    topic_share: float  # share of words taken from the topic's vocabulary


_TWEET = _Style(mean_words=24, sigma=0.45, min_words=6, max_words=60, topic_share=0.35)
_REVIEW = _Style(mean_words=170, sigma=0.55, min_words=40, max_words=600, topic_share=0.20)
_NEWS = _Style(mean_words=260, sigma=0.40, min_words=80, max_words=700, topic_share=0.20)
STYLES = {"covid": _TWEET, "movie": _REVIEW}
# a few topic words come from another topic, as real texts stray
_STRAY_SHARE = 0.08
# within a post, the share of topic words taken from the post's subtopic group
_SUBTOPIC_SHARE = 0.6


def _unique(words: str) -> np.ndarray:
    return np.array(list(dict.fromkeys(words.split())), dtype=object)


_COMMON = _unique(COMMON)
_VOCAB = {topic: _unique(words) for topic, words in TOPIC_WORDS.items()}


@lru_cache(maxsize=64)
def _zipf_cdf(n: int, exponent: float = 0.9) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    cdf = np.cumsum(weights)
    return np.asarray(cdf / cdf[-1])


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(size)), len(cdf) - 1)


def post_text(topic: str, subtopic: int, rng: np.random.Generator) -> str:
    """One post of ``topic`` leaning on vocabulary group ``subtopic`` (0..SUBTOPICS-1)."""
    style = STYLES.get(topic, _NEWS)
    n = int(rng.lognormal(np.log(style.mean_words), style.sigma))
    n = min(max(n, style.min_words), style.max_words)
    words = _COMMON[_draw(rng, _zipf_cdf(len(_COMMON)), n)]
    is_topic = rng.random(n) < style.topic_share
    k = int(is_topic.sum())
    vocab = _VOCAB[topic]
    # the subtopic's words sit at positions subtopic, subtopic + SUBTOPICS, ...
    group = vocab[subtopic::SUBTOPICS]
    from_group = rng.random(k) < _SUBTOPIC_SHARE
    chosen = np.where(
        from_group,
        group[_draw(rng, _zipf_cdf(len(group)), k)],
        vocab[_draw(rng, _zipf_cdf(len(vocab)), k)],
    )
    stray = rng.random(k) < _STRAY_SHARE
    if stray.any():
        others = [t for t in _VOCAB if t != topic]
        other = _VOCAB[others[int(rng.integers(len(others)))]]
        chosen[stray] = other[rng.integers(len(other), size=int(stray.sum()))]
    words[is_topic] = chosen
    if style is _TWEET:
        return _tweet(list(words), topic, rng)
    return _sentences(list(words), rng)


def _sentences(words: list[str], rng: np.random.Generator) -> str:
    out: list[str] = []
    i = 0
    while i < len(words):
        length = int(rng.integers(6, 21))
        sentence = " ".join(words[i : i + length])
        out.append(sentence[:1].upper() + sentence[1:] + ".")
        i += length
    return " ".join(out)


def _tweet(words: list[str], topic: str, rng: np.random.Generator) -> str:
    text = " ".join(words)
    tags = _VOCAB[topic][rng.integers(min(30, len(_VOCAB[topic])), size=int(rng.integers(0, 3)))]
    if len(tags):
        text += " " + " ".join(f"#{tag}" for tag in tags)
    return text


def post_texts(topics: list[str], subtopics: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Texts of many posts, one per (topic, subtopic) pair, drawn in order from ``rng``."""
    return [post_text(t, int(s), rng) for t, s in zip(topics, subtopics, strict=True)]
