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
    """Grades a batch of recall.judge.interface.JudgeRequest: one Verdict (1, 0 or None + reason) each."""

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


def text(obj: dict, key: str, where: str) -> str:
    """obj[key] as a string with more than white space, else ContractError naming it."""
    value = require_field(obj, key, str, where)
    if not value.strip():
        raise ContractError(f"{where}: field '{key}' is empty; expected a non-empty string")
    return value


def item_from_dict(obj: dict, where: str) -> QAItem:
    """Validate one decoded line of a QA file."""
    fact = obj.get("fact")
    if fact is not None:
        if not isinstance(fact, dict):
            raise ContractError(f"{where}: field 'fact' must be an object or null, got {fact!r}")
        fact = Fact(text(fact, "subject", where + " fact"),
                    text(fact, "relation", where + " fact"))
    elif "fact" not in obj:
        raise ContractError(f"{where}: missing field 'fact' (use null when unknown)")
    split = require_field(obj, "split", str, where)
    if split not in SPLITS:
        raise ContractError(f"{where}: field 'split' must be one of {SPLITS}, got {split!r}")
    return QAItem(
        id=text(obj, "id", where),
        dataset=text(obj, "dataset", where),
        question=text(obj, "question", where),
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


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 file, a leading BOM dropped, newlines kept.

    Lines are split on bytes first: in UTF-8 the byte 0x0A only ever means a newline, so a
    line decodes on its own, and a decode error names its line and column (a bare
    UnicodeDecodeError names neither the file nor the line)."""
    with Path(path).open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1:
                if raw.startswith(UTF16_BOMS):
                    raise ContractError(f"{path}:1: the file is UTF-16 (it starts with a UTF-16 "
                                        "byte-order mark); expected UTF-8: re-save it as UTF-8")
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ContractError(
                    f"{path}:{lineno}: not UTF-8: byte 0x{raw[err.start]:02x} at column "
                    f"{err.start + 1} ({err.reason}); expected UTF-8 text (a Latin-1 or "
                    "Windows-1252 file? re-save it as UTF-8)") from None


def read_jsonl(path: str | Path, parse) -> Iterator:
    """Parse each non-empty line with `parse(obj, where)`; `where` is 'file:line' for errors."""
    for lineno, line in text_lines(path):
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


def unique_ids(rows: Iterable[tuple[str, str]], what: str) -> None:
    """ContractError naming both places when an id repeats; rows are (id, 'file:line')."""
    seen: dict[str, str] = {}
    for key, where in rows:
        if key in seen:
            raise ContractError(f"{where}: {what} {key!r} repeats the one at {seen[key]}; "
                                "expected unique ids")
        seen[key] = where


def read_items(path: str | Path) -> list[QAItem]:
    """Every item of a QA file; an empty file or a repeated id is an error."""
    located = list(read_jsonl(path, lambda obj, where: (item_from_dict(obj, where), where)))
    if not located:
        raise ContractError(f"{path}: holds no items; expected one JSON object per line")
    unique_ids(((item.id, where) for item, where in located), "id")
    return [item for item, _ in located]


def read_records(path: str | Path) -> list[SampleRecord]:
    return list(read_jsonl(path, record_from_dict))


def write_json(path: str | Path, data) -> Path:
    """One JSON document (a stage's metrics file), indented, its directory made; returns the path.

    >>> import tempfile; p = write_json(Path(tempfile.mkdtemp()) / "m" / "x.json", {"acc": 0.5})
    >>> p.read_text()
    '{\\n  "acc": 0.5\\n}\\n'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


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
