"""Rows of a dataset file into `RawItem`s: the field readers every format module shares.

A malformed row raises `ContractError` naming the file (or Hub split), the line or row, and
the field.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Iterator

from recall.contract import ContractError, Fact

# Fields hold long quoted texts (SimpleQA's metadata lists URLs).
csv.field_size_limit(1 << 24)


@dataclass(frozen=True)
class RawItem:
    """One dataset row before the split protocol: `native_id` is unique within its source."""

    native_id: str
    question: str
    answers: tuple[str, ...]
    fact: Fact | None
    where: str = dataclass_field(default="", compare=False)  # 'file:line', for error messages


def answer_list(values, where: str, field: str) -> tuple[str, ...]:
    """Non-empty, stripped, order-kept, de-duplicated answer strings, or ContractError."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ContractError(f"{where}: field '{field}' must be a list of strings, got {values!r}")
    out: list[str] = []
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise ContractError(f"{where}: field '{field}[{i}]' must be a non-empty string, "
                                f"got {value!r}")
        if value.strip() not in out:
            out.append(value.strip())
    if not out:
        raise ContractError(f"{where}: field '{field}' must hold at least one answer")
    return tuple(out)


def field(row: dict, name: str, where: str):
    """row[name], or ContractError naming the missing field."""
    if name not in row:
        raise ContractError(f"{where}: missing field '{name}'")
    return row[name]


def text_field(row: dict, name: str, where: str) -> str:
    """row[name] as a non-empty stripped string, or ContractError naming it."""
    value = field(row, name, where)
    if not isinstance(value, str) or not value.strip():
        raise ContractError(f"{where}: field '{name}' must be a non-empty string, got {value!r}")
    return value.strip()


def read_table(path: Path, delimiter: str, required: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    """CSV/TSV rows as ('file:line', row). A missing column fails on the header; a row whose
    field count differs from the header's (an unquoted delimiter, or a quote left open that
    swallowed the rows after it) fails naming the line it starts on."""
    from recall.contract import text_lines

    reader = csv.reader((line for _, line in text_lines(path)), delimiter=delimiter, strict=True)
    start = 1
    try:
        header = next(reader, None)
        missing = [c for c in required if c not in (header or [])]
        if missing:
            raise ContractError(f"{path}:1: header lacks column(s) {missing}; got {header}")
        start = 2
        for cells in reader:
            where = f"{path}:{start}"  # a quoted field may span lines: name the row's first
            if len(cells) != len(header):
                spans = reader.line_num - start + 1
                raise ContractError(
                    f"{where}: {len(cells)} field(s), expected {len(header)} as in the header "
                    f"{header}" + (f"; the row runs over {spans} lines, so a quote is probably "
                                   "left open" if spans > 1 else "; an unquoted "
                                   f"{'comma' if delimiter == ',' else 'tab'} in a field?"))
            yield where, dict(zip(header, cells))
            start = reader.line_num + 1
    except csv.Error as err:
        # strict: text after a closing quote is an error, which is how a quote left open
        # mid-file shows once the runaway field meets the next row's quotes.
        raise ContractError(f"{path}:{start}: the row starting here is not valid "
                            f"{'CSV' if delimiter == ',' else 'TSV'}: {err} (at line "
                            f"{reader.line_num}); a quote left open?") from None


def read_json_lines(path: Path, parse_row) -> Iterator[RawItem]:
    """A JSONL file's rows through `parse_row(row, 'file:line', index)`."""
    from recall.contract import read_jsonl

    for index, (row, where) in enumerate(read_jsonl(path, lambda row, where: (row, where))):
        yield parse_row(row, where, index)
