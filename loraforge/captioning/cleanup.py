"""Pure text clean-up of raw captioner output: artefact words, filler openers, repeats, stray punctuation."""

from __future__ import annotations

import re
import unicodedata

# BLIP-family models hallucinate these pseudo-words from noisy LAION alt-text ("arafed woman").
_ARTEFACT_WORD = r"ar{1,2}af{1,2}e{0,2}d?"
_ARTICLE_BEFORE_ARTEFACT = re.compile(rf"\b(a|an)\s+{_ARTEFACT_WORD}\b\s*(?=(\w))", re.IGNORECASE)
_ARTEFACT = re.compile(rf"\b{_ARTEFACT_WORD}\b", re.IGNORECASE)

# Openers that describe the medium instead of the subject; removed only where a clause starts so that
# "a man holding a picture of his dog" keeps its meaning.
_OPENERS = (
    r"in this (?:image|picture|photo)\s*,?",
    r"(?:the|this) (?:image|picture|photo) (?:shows|depicts|features|contains|is of)",
    r"this is an? (?:image|picture|photo|photograph) of",
    r"there (?:is|are)",
    r"an? (?:picture|image) of",
)
_OPENER = re.compile(r"(^|[.!?;,]\s*)(?:" + "|".join(_OPENERS) + r")\s+", re.IGNORECASE)

_SPECIAL_TOKENS = re.compile(r"</?s>|<pad>|<unk>|\[(?:SEP|CLS|PAD|UNK|MASK)\]", re.IGNORECASE)
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_REPEATED_PUNCT = re.compile(r"([,;:])(?:\s*[,;:])+")
_COMMA_BEFORE_STOP = re.compile(r"[,;:]\s*([.!?])")
_STOP_BEFORE_COMMA = re.compile(r"\.\s*,")
_REPEATED_STOPS = re.compile(r"\.(?:\s*\.)+")
_PUNCT_WITHOUT_SPACE = re.compile(r"([,;])(?=[^\s\d])")
_EDGE_PUNCT = " ,;:-"
_WORD_KEY = re.compile(r"[^\w']+")
MAX_REPEAT_WORDS = 8


def clean_caption(raw: str) -> str:
    """A caption without captioner artefacts; the meaning and the user's casing are kept."""
    text = unicodedata.normalize("NFC", raw or "")
    text = _INVISIBLE.sub("", text)
    text = _SPECIAL_TOKENS.sub(" ", text)
    text = " ".join(text.split())
    text = _ARTICLE_BEFORE_ARTEFACT.sub(lambda m: _article_for(m.group(2)) + " ", text)
    text = _ARTEFACT.sub(" ", text)
    text = _remove_openers(text)
    text = collapse_repeated_words(text)
    text = dedupe_comma_phrases(text)
    return tidy_punctuation(text)


def _article_for(next_letter: str) -> str:
    return "an" if next_letter.lower() in "aeiou" else "a"


def _remove_openers(text: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = _OPENER.sub(lambda m: m.group(1), text.strip(), count=1)
    return text


def _key(token: str) -> str:
    return _WORD_KEY.sub("", token.lower())


def collapse_repeated_words(text: str, *, max_words: int = MAX_REPEAT_WORDS) -> str:
    """Drop immediate repeats of a word or phrase ("in a park in a park" -> "in a park")."""
    tokens = text.split()
    keys = [_key(token) for token in tokens]
    changed = True
    while changed:
        changed = False
        for size in range(min(max_words, len(tokens) // 2), 0, -1):
            start = 0
            while start + 2 * size <= len(tokens):
                first, second = keys[start : start + size], keys[start + size : start + 2 * size]
                if all(first) and first == second:
                    # Keep the punctuation that closed the dropped copy (a final "." or ",").
                    tail = tokens[start + 2 * size - 1][len(tokens[start + 2 * size - 1].rstrip(".,;:!?")) :]
                    del tokens[start + size : start + 2 * size]
                    del keys[start + size : start + 2 * size]
                    if tail:
                        last = start + size - 1
                        tokens[last] = tokens[last].rstrip(".,;:!?") + tail
                    changed = True
                else:
                    start += 1
    return " ".join(tokens)


def dedupe_comma_phrases(text: str) -> str:
    """Keep the first of comma-separated phrases that repeat ("red dress, smiling, red dress")."""
    if "," not in text:
        return text
    seen: set[str] = set()
    kept: list[str] = []
    for part in text.split(","):
        key = " ".join(_key(word) for word in part.split())
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(part)
    return ",".join(kept)


def tidy_punctuation(text: str) -> str:
    """Single spaces, no space before punctuation, no doubled separators or stops, no dangling commas."""
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    text = _COMMA_BEFORE_STOP.sub(r"\1", text)
    text = _STOP_BEFORE_COMMA.sub(",", text)
    text = _REPEATED_STOPS.sub(".", text)
    text = _PUNCT_WITHOUT_SPACE.sub(r"\1 ", text)
    text = " ".join(text.split())
    text = text.strip(_EDGE_PUNCT)
    text = text.lstrip(".!?").strip()
    return text


def join_parts(parts: list[str]) -> str:
    """Join caption parts with ", ", dropping empty ones and the closing punctuation of inner ones."""
    cleaned = [part.strip() for part in parts if part and part.strip(_EDGE_PUNCT + ".")]
    inner = [part.rstrip(_EDGE_PUNCT + ".") for part in cleaned[:-1]]
    return tidy_punctuation(", ".join(inner + cleaned[-1:]))
