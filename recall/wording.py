"""Word-level comparison of two questions: what the heuristic dedup verifier reads.

Real rewordings break naive word overlap in known ways, each handled here:
- hyphens and apostrophes: "trick-taking" is "trick taking", "Hazel's" is "hazel";
- compounds: a word may meet two adjacent words of the other side ("castaway" and
  "cast away", "kick-boxer" and "kickboxer", "Le Bon" and "LeBon");
- inflection and spelling variants ("plays"/"played", "honor"/"honour", "centre"/"center"),
  met by fuzzy matching instead of a stemmer, which mangles names ("united states" was
  "unit stat");
- accents: "Aimé" is "aime".
Numbers must match exactly: "1972" is not "1973", and "11a" is not "11g".

A question's *subject* is approximated by its rarest words: rarity is the inverse document
frequency over every question being deduplicated, so names ("bieber", "phasma") weigh most
and question forms ("who", "plays", "name") least.
"""

from __future__ import annotations

import functools
import math
import os
import re
import unicodedata
from collections import Counter
from difflib import SequenceMatcher
from typing import Sequence

_POSSESSIVE = re.compile(r"['’]s\b")
_APOSTROPHE = re.compile(r"['’`]")
_NON_WORD = re.compile(r"[^a-z0-9]+")
FUZZY_RATIO = 0.8  # SequenceMatcher ratio: "centre"/"center" 0.83, "directed"/"director" 0.75


def words(text: str) -> tuple[str, ...]:
    """Lower-cased, accent-free word tokens, split at every non-alphanumeric character.

    >>> words("Who's Hazel's 'boyfriend' in trick-taking Café games?")
    ('who', 'hazel', 'boyfriend', 'in', 'trick', 'taking', 'cafe', 'games')
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = _APOSTROPHE.sub("", _POSSESSIVE.sub("", text))
    return tuple(w for w in _NON_WORD.split(text) if w)


@functools.lru_cache(maxsize=1 << 18)
def same_word(a: str, b: str) -> bool:
    """Equal, or (for words of letters) one a prefix or suffix of the other, or both the same
    but for a short ending, or nearly the same letters.

    >>> [same_word(*p) for p in [("played", "plays"), ("centre", "center"), ("1972", "1973"),
    ...                          ("kick", "kickboxer"), ("moon", "mood"), ("11a", "11g")]]
    [True, True, False, True, False, False]
    """
    if a == b:
        return True
    if not (a.isalpha() and b.isalpha()):
        return False
    short, long_ = sorted((a, b), key=len)
    if len(short) >= 4 and (long_.startswith(short) or len(short) >= 5 and long_.endswith(short)):
        return True
    stem = len(os.path.commonprefix([a, b]))  # inflections share all but a short ending
    if stem >= 4 and stem >= len(short) - 2:
        return True
    return len(short) >= 5 and SequenceMatcher(None, a, b).ratio() >= FUZZY_RATIO


def matched(tokens: Sequence[str], i: int, other: Sequence[str], other_compounds: set[str]
            ) -> bool:
    """Whether tokens[i] occurs in `other`: as a word, or joined to a neighbour as a compound
    the other side writes as one word, or as a compound of two of the other's words."""
    w = tokens[i]
    if any(same_word(w, o) for o in other) or w in other_compounds:
        return True
    joined = ([tokens[i - 1] + w] if i > 0 else []) + ([w + tokens[i + 1]]
                                                        if i + 1 < len(tokens) else [])
    return any(j in other for j in joined)


class Vocabulary:
    """Word rarity over a corpus of questions; `content` keeps words that can name a subject."""

    def __init__(self, questions: Sequence[str], max_df: float, stop_words: frozenset[str]):
        self.df = Counter(w for q in questions for w in set(words(q)))
        self.n = max(len(questions), 1)
        self.max_df, self.stop_words = max_df, stop_words

    def idf(self, word: str) -> float:
        return math.log((self.n + 1) / (self.df.get(word, 0) + 1)) + 1.0

    def content(self, tokens: Sequence[str]) -> list[int]:
        """Indices of tokens that are neither stop words nor common question-form words."""
        return [i for i, w in enumerate(tokens)
                if w not in self.stop_words and self.df.get(w, 0) <= self.max_df * self.n]


def compounds(tokens: Sequence[str]) -> set[str]:
    return {a + b for a, b in zip(tokens, tokens[1:])}
