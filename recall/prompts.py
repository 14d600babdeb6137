"""Prompt formats, each versioned so results stay comparable across changes.

The direct style asks for the answer alone, with no reasoning: the paper's zero-shot,
closed-book, one-hop setting. For the toy model the same format is used in pretraining
QA lines, so the model learns to stop after the answer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptStyle:
    name: str
    version: str
    template: str

    def render(self, question: str) -> str:
        return self.template.format(question=question)


DIRECT = PromptStyle("direct", "v1", "question : {question} answer :")
# Not usable with the toy model, which never saw reasoning text; kept for the paper profile.
COT = PromptStyle("cot", "v1", "question : {question} let 's think step by step .")

STYLES = {s.name: s for s in (DIRECT, COT)}


def training_line(question: str, answer: str, eos: str) -> str:
    """A QA line as it appears in pretraining text: prompt, answer, end of sequence."""
    return f"{DIRECT.render(question)} {answer} {eos}"


def clean_completion(text: str) -> str:
    """The answer part of a completion: first line, surrounding space stripped."""
    return text.strip().split("\n", 1)[0].strip()
