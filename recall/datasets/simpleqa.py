"""SimpleQA: CSV with a metadata column and the question and answer.

The original header is `metadata,problem,answer` (openai/simple-evals, and the Hub copy
basicv8vc/SimpleQA); the copy in shared/data renames it to `metadata,question,true_answer`.
Both are read. Fields hold commas, quotes and newlines, so only a real CSV parser will do.
No ids ship with the file (the row number is the id); no fact metadata (null).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from recall.contract import ContractError
from recall.datasets.rows import RawItem, read_table, text_field

HEADERS = (("problem", "answer"), ("question", "true_answer"))


def parse_row(row: dict, where: str, index: int) -> RawItem:
    for question, answer in HEADERS:
        if question in row:
            return RawItem(native_id=f"{index:05d}", question=text_field(row, question, where),
                           answers=(text_field(row, answer, where),), fact=None,
                           where=where)
    raise ContractError(f"{where}: missing field 'problem' (or 'question')")


def read_file(path: Path) -> Iterator[RawItem]:
    from recall.contract import text_lines

    header = next(csv.reader(line for _, line in text_lines(path)), [])
    columns = next((h for h in HEADERS if set(h) <= set(header)), None)
    if columns is None:
        raise ContractError(f"{path}:1: header must hold 'problem,answer' or "
                            f"'question,true_answer'; got {header}")
    for index, (where, row) in enumerate(read_table(path, ",", columns)):
        yield parse_row(row, where, index)
