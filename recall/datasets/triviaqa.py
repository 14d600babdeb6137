"""TriviaQA in the Hugging Face schema: JSONL rows {"question", "question_id",
"answer": {"value", "aliases", "normalized_aliases", ...}}.

Answers are the canonical value, then its aliases. No fact metadata (null).
Hub: mandarjoshi/trivia_qa, config rc.nocontext (splits train, validation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from recall.contract import ContractError
from recall.datasets.rows import RawItem, answer_list, field, read_json_lines, text_field

# The rc configs repeat a question verbatim once per evidence document: one item, not an error.
VERBATIM_REPEATS = True


def parse_row(row: dict, where: str, index: int) -> RawItem:
    answer = field(row, "answer", where)
    if not isinstance(answer, dict):
        raise ContractError(f"{where}: field 'answer' must be an object with 'value' and "
                            f"'aliases', got {answer!r}")
    value = text_field(answer, "value", where + " answer")
    aliases = field(answer, "aliases", where + " answer")
    return RawItem(native_id=text_field(row, "question_id", where),
                   question=text_field(row, "question", where),
                   answers=answer_list([value, *aliases] if isinstance(aliases, list) else aliases,
                                       where, "answer.aliases"),
                   fact=None, where=where)


def read_file(path: Path) -> Iterator[RawItem]:
    return read_json_lines(path, parse_row)
