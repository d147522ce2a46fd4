"""CLIP's byte-pair tokenizer, for counting caption tokens without importing a deep-learning stack.

A port of the count-relevant part of OpenAI CLIP's `simple_tokenizer.py` (MIT licence; the same code
ships as `open_clip.tokenizer.SimpleTokenizer`): lower-case and clean the text, split it with CLIP's
pattern, map bytes to unicode, then merge pairs by rank. Importing `open_clip` costs seconds (it imports
torch and torchvision), so the merges file is read straight from the installed package's folder.
Differences: ftfy's mojibake repair is skipped, and the pattern uses the standard library's `re`, where
`[^\\W\\d_]` stands for CLIP's `\\p{L}`; captions written in plain text count the same (tested against
open_clip in tests/unit/test_clip_bpe.py).
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import re
from functools import lru_cache
from pathlib import Path

_MERGES = 49152 - 256 - 2  # CLIP's vocabulary: 256 bytes, their end-of-word forms, merges, 2 specials
_PATTERN = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE)


def merges_path() -> Path | None:
    """open_clip's `bpe_simple_vocab_16e6.txt.gz`, found without importing open_clip; None if absent."""
    try:
        spec = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    return path if path.is_file() else None


@lru_cache(maxsize=1)
def _byte_to_unicode() -> dict[int, str]:
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


class ClipBpe:
    """Counts the tokens CLIP's text encoder sees, start and end of text excluded."""

    def __init__(self, merges_file: Path) -> None:
        lines = gzip.decompress(merges_file.read_bytes()).decode("utf-8").split("\n")[1 : _MERGES + 1]
        self._ranks = {tuple(line.split()): rank for rank, line in enumerate(lines)}
        self._cache: dict[str, int] = {}

    def count(self, text: str) -> int:
        text = " ".join(html.unescape(html.unescape(text)).split()).lower()
        encode = _byte_to_unicode()
        total = 0
        for piece in _PATTERN.findall(text):
            token = "".join(encode[byte] for byte in piece.encode("utf-8"))
            total += self._pieces(token)
        return total

    def _pieces(self, token: str) -> int:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = (*token[:-1], token[-1] + "</w>")
        while len(word) > 1:
            pairs = set(zip(word, word[1:], strict=False))
            best = min(pairs, key=lambda pair: self._ranks.get(pair, _MERGES))
            if best not in self._ranks:
                break
            merged: list[str] = []
            index = 0
            while index < len(word):
                if index < len(word) - 1 and (word[index], word[index + 1]) == best:
                    merged.append(word[index] + word[index + 1])
                    index += 2
                else:
                    merged.append(word[index])
                    index += 1
            word = tuple(merged)
        self._cache[token] = len(word)
        return len(word)
