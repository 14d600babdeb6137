"""Judges: decide whether a candidate answer matches the gold answers.

One interface for every backend: a batch of `JudgeRequest` in, one `Verdict` per request
out, with value 1 (correct), 0 (wrong) or None (no verdict: the reason says why).
Evaluation, the sampling analyses and the GRPO reward all go through it, so training and
testing can never disagree about what counts as correct.

The rule judge is SQuAD-style normalised match against every alias. The LLM judge lives
in `recall.llm_judge`.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Sequence

from recall.prompts import DIRECT, clean_completion, completion_text

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class JudgeRequest:
    question: str
    answers: tuple[str, ...]
    candidate: str


@dataclass(frozen=True)
class Verdict:
    value: int | None  # 1 correct, 0 wrong, None no verdict
    reason: str = ""


class JudgeError(RuntimeError):
    """The judge could not give verdicts (unreachable after retries): never a reward of 0."""


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


def reward_function(judge, max_failure_rate: float = 0.0):
    """A TRL reward function: binary correctness of each completion, from `judge`.

    TRL passes dataset columns as keyword lists aligned with `completions`. A completion
    the judge could not grade gets None, which TRL leaves out of the group baseline; the
    count is kept in `.unjudged`, and a batch with a larger share than `max_failure_rate`
    stops training with JudgeError.

    >>> f = reward_function(RuleJudge())
    >>> f(prompts=["q", "q"], completions=[" paris", " rome"], question=["q", "q"],
    ...   answers=[["paris"], ["paris"]])
    [1.0, 0.0]
    """

    def correctness(prompts, completions, question, answers, **_):
        # The answer evaluation grades: one extractor for the reward, evaluation and analyses.
        verdicts = judge.judge([JudgeRequest(q, tuple(golds), DIRECT.answer(completion_text(c)))
                                for q, golds, c in zip(question, answers, completions)])
        missing = [v for v in verdicts if v.value is None]
        correctness.unjudged += len(missing)
        correctness.judged += len(verdicts)
        if verdicts and len(missing) / len(verdicts) > max_failure_rate:
            raise JudgeError(f"{len(missing)} of {len(verdicts)} completions got no verdict "
                             f"(> judge.max_failure_rate {max_failure_rate}); "
                             f"first reason: {missing[0].reason}")
        return [None if v.value is None else float(v.value) for v in verdicts]

    correctness.__name__ = f"{judge.name}_correctness"
    correctness.unjudged = correctness.judged = 0
    return correctness
