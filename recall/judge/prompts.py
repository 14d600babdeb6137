"""The judge's prompts, each versioned: a cached verdict is reused only under the same version.

The graders (the paper's binary one, SimpleQA's three-way one, the toy judge's format) and
the dedup verifier's containment prompt, which the same server answers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JudgePrompt:
    """A grading prompt: the template, and the exact replies it accepts with their verdicts."""

    name: str
    version: str
    template: str
    choices: dict[str, int]  # the whole reply (stripped) -> verdict; anything else is unparseable

    def render(self, question: str, answers: tuple[str, ...], candidate: str) -> str:
        return self.template.format(question=question, answers=" ; ".join(answers),
                                    candidate=candidate.strip() or "(empty)")

    def parse(self, reply: str) -> int | None:
        """Anchored match of the whole reply against the choices; None when it is anything else."""
        return self.choices.get(reply.strip())


# The paper's binary grader (Qwen2.5-72B-Instruct): semantic equivalence, 1 or 0.
JUDGE_BINARY = JudgePrompt("binary", "v1", (
    "You are grading an answer to a factual question. Decide whether the candidate answer is "
    "semantically equivalent to any of the gold answers: the same entity, date or value, "
    "allowing aliases, abbreviations and formatting differences. A more or less specific "
    "answer, or a different entity, is not equivalent.\n"
    "Question: {question}\nGold answers: {answers}\nCandidate answer: {candidate}\n"
    "Reply with 1 if equivalent and 0 otherwise, and nothing else.\nReply:"),
    {"1": 1, "0": 0})

# SimpleQA's three-way grader, condensed; only CORRECT counts as correct.
JUDGE_SIMPLEQA = JudgePrompt("simpleqa", "v1", (
    "Grade the predicted answer to the question against the gold target as CORRECT, "
    "INCORRECT or NOT_ATTEMPTED. CORRECT: it contains the gold target's meaning without "
    "contradiction. INCORRECT: it contradicts or differs from the gold target. "
    "NOT_ATTEMPTED: it gives no answer.\n"
    "Question: {question}\nGold target: {answers}\nPredicted answer: {candidate}\n"
    "Reply with exactly one of CORRECT, INCORRECT, NOT_ATTEMPTED.\nGrade:"),
    {"CORRECT": 1, "INCORRECT": 0, "NOT_ATTEMPTED": 0})

# The toy judge's own format (word-level vocabulary, trained by the `judge` stage).
JUDGE_TOY = JudgePrompt("toy", "v1",
                        "question : {question} gold : {answers} candidate : {candidate} verdict :",
                        {"1": 1, "0": 0})

JUDGE_PROMPTS = {p.name: p for p in (JUDGE_BINARY, JUDGE_SIMPLEQA, JUDGE_TOY)}


@dataclass(frozen=True)
class ContainmentPrompt:
    """The dedup verifier's prompt: is a test item's fact asked by a train item?"""

    name: str
    version: str
    template: str

    def render(self, test_q: str, test_a: tuple[str, ...], train_q: str,
               train_a: tuple[str, ...]) -> str:
        return self.template.format(test_question=test_q, test_answers=" ; ".join(test_a),
                                    train_question=train_q, train_answers=" ; ".join(train_a))


# Unlike lm-sys/llm-decontaminator's prompt, which ignores names, a fact-level rule turns on
# the subject: the same answer about a different subject is not a leak.
CONTAINMENT = ContainmentPrompt("containment", "v1", (
    "You check a question-answering benchmark for train/test leakage at the level of facts. "
    "A test item is CONTAINED in a train item when both ask for the same underlying fact: the "
    "same subject and the same relation, however differently worded, so that learning the "
    "train item teaches the test answer. Items that share an answer but ask about a different "
    "subject or a different relation are NOT contained.\n"
    "Test question: {test_question}\nTest answers: {test_answers}\n"
    "Train question: {train_question}\nTrain answers: {train_answers}\n"
    'Reply with a JSON object {{"is_contained": true or false, "reasoning": "one sentence"}}.\n'
    "JSON:"))
