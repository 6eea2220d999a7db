from pathlib import Path

import numpy as np
import pytest

from recommenders import text_embeddings
from recommenders.text_embeddings import embed_texts, embedding_dims

TEXTS = ["Covid cases rise in the city", "The film was a masterpiece", "", "Stocks fell today"]


def test_hashing_vectors_are_deterministic_unit_rows_and_zero_for_empty_texts() -> None:
    vectors = embed_texts(TEXTS, "hashing")
    assert vectors.shape == (4, embedding_dims("hashing"))
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[[0, 1, 3]], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any()
    assert np.array_equal(vectors, embed_texts(TEXTS, "hashing"))


def test_the_cache_is_keyed_by_text_and_spares_the_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = embed_texts(TEXTS[:2], "hashing", cache_dir=tmp_path)
    assert (tmp_path / "hashing.npz").is_file()
    encoded: list[list[str]] = []
    real = text_embeddings._encode

    def counting(encoder: text_embeddings.EncoderName, texts: list[str], progress: bool):
        encoded.append(texts)
        return real(encoder, texts, progress)

    monkeypatch.setattr(text_embeddings, "_encode", counting)
    again = embed_texts([*TEXTS[:2], TEXTS[3]], "hashing", cache_dir=tmp_path)
    assert encoded == [[TEXTS[3]]]  # only the new text went to the encoder
    assert np.array_equal(again[:2], first)
    assert np.array_equal(embed_texts(TEXTS, "hashing", cache_dir=tmp_path)[3], again[2])
    assert encoded == [[TEXTS[3]]]


def test_an_unknown_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match="encoder must be one of"):
        embed_texts(["x"], "word2vec")  # type: ignore[arg-type]


@pytest.mark.slow
def test_minilm_gives_unit_384_vectors_that_know_meaning(tmp_path: Path) -> None:
    texts = ["The movie was wonderful", "A great film, I loved it", "Interest rates went up"]
    vectors = embed_texts(texts, "minilm", cache_dir=tmp_path)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
