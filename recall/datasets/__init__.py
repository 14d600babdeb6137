"""Real QA datasets into the data contract: one module per dataset format.

Each format module turns one raw row into a `RawItem` (`parse_row(row, where)`) and reads its
local file format (`read_file(path)`). `load_source` picks the local file when it exists and
the Hugging Face Hub otherwise, so the same params work online and offline. A malformed row
raises `ContractError` naming the file (or Hub split), the line or row, and the field.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from recall.config import SourceConfig
from recall.contract import ContractError
from recall.datasets import nq_open, popqa, simpleqa, triviaqa
from recall.datasets.rows import RawItem


def _format(name: str):
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
