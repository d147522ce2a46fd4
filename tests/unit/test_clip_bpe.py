"""Our CLIP token count against open_clip's own tokenizer, on captions of every shape we write."""

from __future__ import annotations

import random

import pytest

from loraforge.captioning.clip_bpe import ClipBpe, merges_path
from loraforge.captioning.tokens import clip_token_count

CAPTIONS = [
    "ohwx woman, a photo of a woman standing in a field",
    "a café in Zürich — 3 people, naïve art; it's 12:30pm!!",
    "1girl, solo, long_hair, looking_at_viewer, smile, blue eyes",
    "Ohwx Man wearing a NASA spacesuit & holding a helmet (1984)",
    "日本語のテキスト emoji 🎉 test",
    "ohwx_woman  sitting\non a chair",
    "&amp; html &lt;b&gt; entities, they'll be unescaped",
    "",
    "a" * 300,
]


@pytest.fixture(scope="module")
def open_clip_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def test_counts_match_open_clip(open_clip_tokenizer) -> None:
    for caption in CAPTIONS:
        assert clip_token_count(caption) == len(open_clip_tokenizer.encode(caption)) + 2, caption


def test_counts_match_open_clip_on_random_word_salad(open_clip_tokenizer) -> None:
    """Rare words are where merges matter: made-up words split into several pieces, the same as CLIP."""
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzéü0123456789,.;-_'"
    for _ in range(300):
        words = ["".join(rng.choices(alphabet, k=rng.randint(1, 14))) for _ in range(rng.randint(1, 12))]
        caption = " ".join(words)
        assert clip_token_count(caption) == len(open_clip_tokenizer.encode(caption)) + 2, caption


def test_reads_the_vocabulary_without_importing_open_clip() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from loraforge.captioning.tokens import clip_token_count; "
        "n = clip_token_count('ohwx woman, a photo'); "
        "print(n, 'open_clip' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["7", "False", "False"]


def test_merges_file_is_open_clips() -> None:
    path = merges_path()
    assert path is not None and path.name == "bpe_simple_vocab_16e6.txt.gz"
    assert ClipBpe(path).count("a photo") == 2
