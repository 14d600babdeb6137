"""The rule judge: SQuAD-style normalised match against every gold alias.

The paper's weaker reward ablation, the LLM judge's fast path for exact hits, and the
normalisation every answer comparison in the project shares.
"""

from __future__ import annotations

import re
import string
from typing import Sequence

from recall.judge.interface import JudgeRequest, Verdict
from recall.prompts import clean_completion

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (SQuAD v1.1).

    >>> normalize_answer("The  Zantrix Corp.")
    'zantrix corp'
    """
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(answers: Sequence[str], candidate: str) -> bool:
    """Normalised candidate equals a normalised alias (an empty candidate never matches)."""
    got = normalize_answer(clean_completion(candidate))
    return bool(got) and any(got == normalize_answer(a) for a in answers)


def core_words(answers: Sequence[str]) -> set[str]:
    """The normalised words every gold alias shares: the entity's name, without the forms
    ("city", "university of") that vary between aliases.

    >>> sorted(core_words(["brak tolis university", "university of brak tolis", "brak tolis"]))
    ['brak', 'tolis']
    """
    sets = [set(normalize_answer(a).split()) for a in answers if normalize_answer(a)]
    return set.intersection(*sets) if sets else set()


def lacks_core_words(answers: Sequence[str], candidate: str) -> bool:
    """Whether the candidate misses a word that every alias has (the toy's certain
    negatives: another entity, or half of this one's name). No shared word: never."""
    core = core_words(answers)
    return bool(core) and not core <= set(normalize_answer(clean_completion(candidate)).split())


class RuleJudge:
    """Normalised exact match against any gold alias: the paper's weaker reward ablation."""

    name = "rule"

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        return [Verdict(int(exact_match(r.answers, r.candidate)), "exact_match") for r in requests]
