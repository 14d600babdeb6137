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


class RuleJudge:
    """Normalised exact match against any gold alias: the paper's weaker reward ablation."""

    name = "rule"

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        return [Verdict(int(exact_match(r.answers, r.candidate)), "exact_match") for r in requests]
