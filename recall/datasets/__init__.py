"""Real QA datasets into the data contract: one module per dataset format.

Each format module turns one raw row into a `RawItem` (`parse_row(row, where)`) and reads its
local file format (`read_file(path)`). `load_source` picks the local file when it exists and
the Hugging Face Hub otherwise, so the same params work online and offline. A malformed row
raises `ContractError` naming the file (or Hub split), the line or row, and the field.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Iterator

from recall.config import SourceConfig
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


def _format(name: str):
    from recall.datasets import nq_open, popqa, simpleqa, triviaqa

    return {"nq_open": nq_open, "triviaqa": triviaqa, "popqa": popqa, "simpleqa": simpleqa}[name]


def _local_file(source: SourceConfig, root: Path) -> Path | None:
    """The source's local file, when it names one that exists."""
    path = root / source.path if source.path else None
    return path if path is not None and path.exists() else None


def load_source(source: SourceConfig, root: Path = Path(".")) -> list[RawItem]:
    """Every row of one source: the local file if it exists, else its Hub split. An empty
    source is an error, and so is a repeated id (both rows named), except a format's declared
    verbatim repeats (TriviaQA's rc configs: one row per evidence document)."""
    fmt = _format(source.format)
    path = _local_file(source, root)
    if path is not None:
        items, origin = list(fmt.read_file(path)), str(path)
    elif source.hub_id:
        items, origin = _from_hub(source, fmt), f"{source.hub_id}[{source.hub_split}]"
    else:
        raise ContractError(f"data.datasets '{source.name}': file {source.path!r} does not exist "
                            "and no hub_id is set")
    if not items:
        raise ContractError(f"{origin}: data.datasets '{source.name}' holds no rows; expected "
                            f"at least one {source.format} row")
    seen: dict[str, RawItem] = {}
    unique = []
    for item in items:
        first = seen.get(item.native_id)
        if first is None:
            seen[item.native_id] = item
            unique.append(item)
        elif not (getattr(fmt, "VERBATIM_REPEATS", False)
                  and (first.question, first.answers) == (item.question, item.answers)):
            raise ContractError(f"{item.where}: id {item.native_id!r} repeats the one at "
                                f"{first.where}" + (" with other content" if getattr(
                                    fmt, "VERBATIM_REPEATS", False) else "")
                                + "; expected unique ids")
    return unique


def source_origin(source: SourceConfig, root: Path = Path(".")) -> str:
    """Where `load_source` reads from, with the file's sha256: DVC cannot track files outside
    the repo, so metrics/split.json records what each run read."""
    path = _local_file(source, root)
    if path is not None:
        return f"{path} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    return f"hub:{source.hub_id}/{source.hub_config}/{source.hub_split}"


def _from_hub(source: SourceConfig, fmt) -> list[RawItem]:
    import datasets

    try:
        rows = datasets.load_dataset(source.hub_id, source.hub_config or None,
                                     split=source.hub_split or None)
    except Exception as err:  # offline, unknown id, auth: all the same to the user
        raise ContractError(
            f"data.datasets '{source.name}': file {source.path!r} does not exist and the Hub "
            f"dataset {source.hub_id!r} (config {source.hub_config!r}, split "
            f"{source.hub_split!r}) could not be loaded: {type(err).__name__}: {err}") from err
    where = f"{source.hub_id}[{source.hub_split}]"
    return [fmt.parse_row(dict(row), f"{where} row {i}", i) for i, row in enumerate(rows)]
