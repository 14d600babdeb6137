"""Prompt formats, each versioned so results stay comparable across changes.

The direct style asks for the answer alone, with no reasoning: the paper's zero-shot,
closed-book, one-hop setting. For the toy model the same format is used in pretraining
QA lines, so the model learns to stop after the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable


def clean_completion(text: str) -> str:
    """The answer part of a direct completion: first line, surrounding space stripped."""
    return text.strip().split("\n", 1)[0].strip()


# The direct prompt ends in "answer :", so the CoT prompt asks for the same marker; models
# vary in case and in the space before the colon.
_ANSWER_MARKER = re.compile(r"answer\s*:", re.IGNORECASE)


def cot_answer(text: str) -> str:
    """The final answer of a chain-of-thought completion: the first line after the LAST
    "answer :" marker (reasoning may mention the word earlier). No marker: "" (no final
    answer, which the judge grades wrong), never a guess from the reasoning."""
    markers = list(_ANSWER_MARKER.finditer(text))
    return clean_completion(text[markers[-1].end():]) if markers else ""


def has_chat_template(tokenizer) -> bool:
    """Whether prompts go through the tokenizer's chat template: decided by the model's own
    files (an instruct model ships a template; the toy tokenizer has none), never by profile."""
    return bool(getattr(tokenizer, "chat_template", None))


@dataclass(frozen=True)
class PromptStyle:
    """A prompt in two forms: the raw `template` for a model without a chat template (the
    toy, which learned it in pretraining), and `chat`, the user turn for an instruct model,
    rendered by its own chat template. `version` covers both."""

    name: str
    version: str
    template: str
    chat: str
    answer: Callable[[str], str]  # a raw completion -> the answer the judge grades

    def render(self, question: str, tokenizer=None) -> str:
        """The exact text a model is given: chat-templated when `tokenizer` has a template."""
        if tokenizer is not None and has_chat_template(tokenizer):
            return tokenizer.apply_chat_template(self.messages(question), tokenize=False,
                                                 add_generation_prompt=True)
        return self.template.format(question=question)

    def messages(self, question: str) -> list[dict]:
        return [{"role": "user", "content": self.chat.format(question=question)}]

    def training_prompt(self, question: str, tokenizer):
        """A TRL dataset prompt: conversational (TRL applies the same chat template) or text."""
        return self.messages(question) if has_chat_template(tokenizer) else self.render(question)

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


def completion_text(completion) -> str:
    """The text of a TRL completion: a string, or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role") == "assistant")


# The paper's zero-shot, closed-book setting: answer directly, no reasoning. The paper's
# exact wording is not published; this text is ours, versioned here (README).
DIRECT = PromptStyle("direct", "v2", "question : {question} answer :",
                     "Answer the following question with the answer alone: a few words, "
                     "no explanation, no full sentence.\nQuestion: {question}", clean_completion)
# Greedy chain-of-thought, a test-time baseline (params section `cot`). The toy model never saw
# reasoning text, so the toy profile reports it as not applicable instead of running it.
COT = PromptStyle("cot", "v3", (
    "question : {question}\nThink step by step. Then give the final answer alone on the last "
    "line, after \"answer :\".\n"),
    "Question: {question}\nThink step by step. Then give the final answer alone on the last "
    "line, after \"Answer:\".", cot_answer)


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
