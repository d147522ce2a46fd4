"""open_clip embedder and zero-shot tagger on a tiny config saved and reloaded like real weights."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loraforge.errors import ModelError
from loraforge.models.clip import ClipEmbedder, ClipTagger
from tests.support.tiny_models import build_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


def pictures() -> list[Image.Image]:
    red, blue = Image.new("RGB", (40, 30), (250, 0, 0)), Image.new("RGB", (40, 30), (0, 0, 250))
    return [red, blue, Image.new("L", (9, 9))]


def test_embeddings_are_unit_float32_and_reload_identically(tiny_clip: tuple[str, Path]) -> None:
    name, checkpoint = tiny_clip
    first = ClipEmbedder(name, pretrained=checkpoint, device="cpu", batch_size=2).embed(pictures())
    again = ClipEmbedder(name, pretrained=str(checkpoint)).embed(pictures())
    assert first.shape == (3, 32) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(first, again, atol=1e-5)
    assert not np.allclose(first[0], first[1])


def test_empty_input_gives_empty_matrix(tiny_clip: tuple[str, Path]) -> None:
    name, checkpoint = tiny_clip
    assert ClipEmbedder(name, pretrained=checkpoint).embed([]).shape == (0, 32)


def test_checkpoint_found_under_model_dir(tiny_clip: tuple[str, Path]) -> None:
    name, checkpoint = tiny_clip
    embedder = ClipEmbedder(name, pretrained=checkpoint.name, model_dir=checkpoint.parent)
    assert embedder.embed(pictures()[:1]).shape == (1, 32)


def test_missing_checkpoint_is_a_model_error(tmp_path: Path, tiny_clip: tuple[str, Path]) -> None:
    name, _ = tiny_clip
    with pytest.raises(ModelError, match="absent.pt not found"):
        ClipEmbedder(name, pretrained=tmp_path / "absent.pt").load()
    with pytest.raises(ModelError, match="cannot load CLIP model no-such-model"):
        ClipEmbedder("no-such-model").load()


def test_tagger_ranks_vocabulary(tiny_clip: tuple[str, Path]) -> None:
    name, checkpoint = tiny_clip
    tagger = ClipTagger(name, pretrained=checkpoint, vocabulary=["dog", "cat", " ", "woman", "dog"])
    assert tagger.vocabulary == ["dog", "cat", "woman"]
    tags = tagger.tag(pictures(), top_k=2)
    assert len(tags) == 3
    for row in tags:
        assert len(row) == 2
        assert {tag for tag, _ in row} <= {"dog", "cat", "woman"}
        assert row[0][1] >= row[1][1] > 0.0
    assert all(row == [] for row in tagger.tag(pictures(), top_k=3, min_score=1.01))
    everything = tagger.tag(pictures()[:1], top_k=10)[0]
    assert sum(score for _, score in everything) == pytest.approx(1.0, abs=1e-4)


def test_tagger_needs_vocabulary() -> None:
    with pytest.raises(ModelError, match="vocabulary"):
        ClipTagger("ViT-B-32", vocabulary=["", "  "])


def test_loaded_embedder_pickles_without_weights(tiny_clip: tuple[str, Path]) -> None:
    name, checkpoint = tiny_clip
    embedder = ClipEmbedder(name, pretrained=checkpoint)
    expected = embedder.embed(pictures()[:1])
    clone = pickle.loads(pickle.dumps(embedder))
    np.testing.assert_allclose(clone.embed(pictures()[:1]), expected, atol=1e-5)
