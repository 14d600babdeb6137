"""NQ-open (and EfficientQA): JSONL rows {"question": str, "answer": [str, ...]}.

No ids ship with the file, so an item's id is its row number; no fact metadata (null).
Hub: google-research-datasets/nq_open (splits train, validation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from recall.datasets.rows import RawItem, answer_list, field, read_json_lines, text_field


def parse_row(row: dict, where: str, index: int) -> RawItem:
    return RawItem(native_id=f"{index:05d}", question=text_field(row, "question", where),
                   answers=answer_list(field(row, "answer", where), where, "answer"), fact=None,
                   where=where)


def read_file(path: Path) -> Iterator[RawItem]:
    return read_json_lines(path, parse_row)
