"""PopQA: the authors' TSV (AlexTMallen/adaptive-retrieval data/popQA.tsv) or the Hub copy.

Columns used: id, subj, prop, question, possible_answers (a JSON list in a string). PopQA is
the one dataset that ships its fact: (subject, property) fills the contract's `fact`.
Hub: akariasai/PopQA (split test).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from recall.contract import ContractError, Fact
from recall.datasets.rows import RawItem, answer_list, field, read_table, text_field

COLUMNS = ("id", "subj", "prop", "question", "possible_answers")


def parse_row(row: dict, where: str, index: int) -> RawItem:
    # The Hub copy's ids are ints, the TSV's strings: both become a non-empty string.
    raw = field(row, "possible_answers", where)
    try:
        answers = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as err:
        raise ContractError(f"{where}: field 'possible_answers' must be a JSON list of strings "
                            f"({err.msg}), got {raw!r}") from err
    return RawItem(native_id=text_field({"id": str(field(row, "id", where))}, "id", where),
                   question=text_field(row, "question", where),
                   answers=answer_list(answers, where, "possible_answers"),
                   fact=Fact(subject=text_field(row, "subj", where),
                             relation=text_field(row, "prop", where)),
                   where=where)


def read_file(path: Path) -> Iterator[RawItem]:
    for index, (where, row) in enumerate(read_table(path, "\t", COLUMNS)):
        yield parse_row(row, where, index)
