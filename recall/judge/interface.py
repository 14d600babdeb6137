"""The judge interface: a batch of `JudgeRequest` in, one `Verdict` per request out.

Value 1 (correct), 0 (wrong) or None (no verdict: the reason says why). Evaluation, the
sampling analyses and the GRPO reward all go through one judge, so training and testing can
never disagree about what counts as correct. Backends: `rules.RuleJudge` (normalised match)
and `client.LLMJudge` (a vLLM server); `factory.open_judge` picks one from the params.
"""

from __future__ import annotations

from dataclasses import dataclass

from recall.prompts import DIRECT, completion_text


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


def reward_function(judge, max_failure_rate: float = 0.0):
    """A TRL reward function: binary correctness of each completion, from `judge`.

    TRL passes dataset columns as keyword lists aligned with `completions`. A completion
    the judge could not grade gets None, which TRL leaves out of the group baseline; the
    count is kept in `.unjudged`, and a batch with a larger share than `max_failure_rate`
    stops training with JudgeError.

    >>> from recall.judge.rules import RuleJudge
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
