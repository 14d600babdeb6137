"""The data contract and the small interfaces every stage shares. Read this module first.

A QA item is one JSON object per line:
    {"id", "dataset", "question", "answers": [str, ...], "fact": {"subject", "relation"} | null,
     "split": "train" | "val" | "test"}
A sample record adds the model, the prompt style, the sampling temperature, the completions
and one 0/1 score per completion from the judge.

A malformed line raises `ContractError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

SPLITS = ("instruct", "train", "val", "test")


class ContractError(ValueError):
    """A data file that breaks the contract."""


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str


@dataclass(frozen=True)
class QAItem:
    id: str
    dataset: str
    question: str
    answers: tuple[str, ...]
    fact: Fact | None
    split: str


@dataclass(frozen=True)
class SampleRecord:
    id: str
    split: str
    model: str
    prompt_style: str
    temperature: float
    completions: tuple[str, ...]
    scores: tuple[int, ...]


@dataclass(frozen=True)
class SamplingSettings:
    """One engine call's decoding settings. temperature 0 means greedy; top_k -1 means off."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 8
    seed: int = 0


class Engine(Protocol):
    """A sampling backend: prompts in, n completions per prompt out, same order.

    Completions are the raw continuations, stripped of surrounding space; the prompt style
    (`recall.prompts.PromptStyle.answer`) extracts the answer, since a direct answer ends at
    its first line and a chain of thought does not."""

    name: str

    def generate(self, prompts: Sequence[str], settings: SamplingSettings) -> list[list[str]]: ...


class Judge(Protocol):
    """Grades a batch of recall.judge.JudgeRequest: one Verdict (1, 0 or None + reason) each."""

    name: str

    def judge(self, requests: Sequence) -> list: ...


def require_field(obj: dict, key: str, kind, where: str):
    """obj[key] if present and of `kind`, else ContractError naming `where` and the field."""
    if key not in obj:
        raise ContractError(f"{where}: missing field '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ContractError(f"{where}: field '{key}' must be {expected}, got {value!r}")
    return value


def _str_list(obj: dict, key: str, where: str) -> tuple[str, ...]:
    values = require_field(obj, key, list, where)
    if not values:
        raise ContractError(f"{where}: field '{key}' must be a non-empty list")
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v.strip():
            raise ContractError(f"{where}: field '{key}[{i}]' must be a non-empty string, got {v!r}")
    return tuple(values)


def item_from_dict(obj: dict, where: str) -> QAItem:
    """Validate one decoded line of a QA file."""
    fact = obj.get("fact")
    if fact is not None:
        if not isinstance(fact, dict):
            raise ContractError(f"{where}: field 'fact' must be an object or null, got {fact!r}")
        fact = Fact(require_field(fact, "subject", str, where + " fact"),
                    require_field(fact, "relation", str, where + " fact"))
    elif "fact" not in obj:
        raise ContractError(f"{where}: missing field 'fact' (use null when unknown)")
    split = require_field(obj, "split", str, where)
    if split not in SPLITS:
        raise ContractError(f"{where}: field 'split' must be one of {SPLITS}, got {split!r}")
    question = require_field(obj, "question", str, where)
    if not question.strip():
        raise ContractError(f"{where}: field 'question' is empty")
    return QAItem(
        id=require_field(obj, "id", str, where),
        dataset=require_field(obj, "dataset", str, where),
        question=question,
        answers=_str_list(obj, "answers", where),
        fact=fact,
        split=split,
    )


def record_from_dict(obj: dict, where: str) -> SampleRecord:
    """Validate one decoded line of a samples file."""
    # An empty completion is a legitimate (wrong) answer, so only the type is checked.
    completions = tuple(require_field(obj, "completions", list, where))
    if not all(isinstance(c, str) for c in completions):
        raise ContractError(f"{where}: field 'completions' must hold strings")
    scores = tuple(require_field(obj, "scores", list, where))
    if len(scores) != len(completions) or any(s not in (0, 1) for s in scores):
        raise ContractError(
            f"{where}: field 'scores' must hold one 0/1 per completion "
            f"({len(completions)} completions, got {list(scores)[:8]})"
        )
    return SampleRecord(
        id=require_field(obj, "id", str, where),
        split=require_field(obj, "split", str, where),
        model=require_field(obj, "model", str, where),
        prompt_style=require_field(obj, "prompt_style", str, where),
        temperature=float(require_field(obj, "temperature", (int, float), where)),
        completions=completions,
        scores=tuple(int(s) for s in scores),
    )


def read_jsonl(path: str | Path, parse) -> Iterator:
    """Parse each non-empty line with `parse(obj, where)`; `where` is 'file:line' for errors."""
    with Path(path).open() as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ContractError(f"{where}: not valid JSON ({err.msg})") from err
            if not isinstance(obj, dict):
                raise ContractError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            yield parse(obj, where)


def read_items(path: str | Path) -> list[QAItem]:
    return list(read_jsonl(path, item_from_dict))


def read_records(path: str | Path) -> list[SampleRecord]:
    return list(read_jsonl(path, record_from_dict))


def write_jsonl(path: str | Path, rows: Iterable) -> int:
    """Write dataclasses (or dicts) as JSON lines; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(asdict(row) if hasattr(row, "__dataclass_fields__") else row) + "\n")
            n += 1
    return n
