"""Judges: decide whether a candidate answer matches the gold answers.

The rule judge is SQuAD-style normalised match against every alias. Evaluation, the
sampling analyses and the GRPO reward all call `score`, so training and testing can
never disagree about what counts as correct.
"""

from __future__ import annotations

import re
import string
from typing import Sequence

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


class RuleJudge:
    """Normalised exact match against any gold alias."""

    name = "rule"

    def score(self, question: str, answers: Sequence[str], candidate: str) -> int:
        got = normalize_answer(clean_completion(candidate))
        return int(bool(got) and any(got == normalize_answer(a) for a in answers))

    def score_many(self, question: str, answers: Sequence[str],
                   candidates: Sequence[str]) -> list[int]:
        # Samples of one question repeat heavily; judge each distinct string once.
        cache: dict[str, int] = {}
        for c in candidates:
            if c not in cache:
                cache[c] = self.score(question, answers, c)
        return [cache[c] for c in candidates]


def reward_function(judge: RuleJudge):
    """A TRL reward function: binary correctness of each completion against its item's aliases.

    TRL passes dataset columns as keyword lists aligned with `completions`.

    >>> f = reward_function(RuleJudge())
    >>> f(prompts=["q", "q"], completions=[" paris", " rome"], question=["q", "q"],
    ...   answers=[["paris"], ["paris"]])
    [1.0, 0.0]
    """

    def correctness(prompts, completions, question, answers, **_):
        return [float(judge.score(q, golds, c))
                for q, golds, c in zip(question, answers, completions)]

    correctness.__name__ = f"{judge.name}_correctness"
    return correctness
