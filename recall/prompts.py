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
