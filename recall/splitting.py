"""The paper's split protocol, seeded: real sources into train / val / test QA items.

- `train` sources (NQ and TriviaQA train): shuffled; the first `val_size` rows become val,
  the next `train_size` rows RL-train; the rest are left out and counted.
- `test` sources (their original validation splits): every row is test.
- `split` sources (PopQA, SimpleQA): shuffled and cut by `split_fractions` (train, val, test).

Each source shuffles with its own seeded stream, so adding a source never reshuffles another.
"""

from __future__ import annotations

import random
from collections import Counter

from recall.config import DataConfig, SourceConfig
from recall.contract import ContractError, QAItem
from recall.datasets.rows import RawItem


def _cuts(role: str, n: int, cfg: DataConfig) -> list[tuple[str, int]]:
    """(split, count) in order for `n` shuffled rows of a source with `role`."""
    if role == "test":
        return [("test", n)]
    if role == "train":
        val = min(cfg.val_size, n)
        return [("val", val), ("train", min(cfg.train_size, n - val))]
    fractions = cfg.split_fractions
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ContractError(f"data.split_fractions must be three shares summing to 1, got "
                            f"{list(fractions)}")
    train = round(fractions[0] * n)
    val = round(fractions[1] * n)
    return [("train", train), ("val", val), ("test", n - train - val)]


def split_source(source: SourceConfig, rows: list[RawItem], cfg: DataConfig, seed: int
                 ) -> tuple[list[QAItem], int]:
    """One source's QA items under its role, and how many rows the protocol left out."""
    order = list(range(len(rows)))
    if source.role != "test":
        random.Random(f"{seed}-{source.name}").shuffle(order)
    items: list[QAItem] = []
    start = 0
    for split, count in _cuts(source.role, len(rows), cfg):
        for i in order[start:start + count]:
            row = rows[i]
            items.append(QAItem(id=f"{source.name}-{row.native_id}", dataset=source.format,
                                question=row.question, answers=row.answers, fact=row.fact,
                                split=split))
        start += count
    return items, len(rows) - start


def selected_sources(cfg: DataConfig) -> list[SourceConfig]:
    """The `datasets` entries named in `select`, in select order; an unknown name is an error."""
    by_name = {src.name: src for src in cfg.datasets}
    unknown = [name for name in cfg.select if name not in by_name]
    if unknown:
        raise ContractError(f"data.select names {unknown}, not in data.datasets "
                            f"({sorted(by_name)})")
    return [by_name[name] for name in cfg.select]


def split_sources(loaded: list[tuple[SourceConfig, list[RawItem]]], cfg: DataConfig, seed: int
                  ) -> tuple[list[QAItem], dict]:
    """All sources' items plus a summary: items per source and split, rows left out."""
    names = Counter(src.name for src, _ in loaded)
    repeated = sorted(n for n, c in names.items() if c > 1)
    if repeated:
        raise ContractError(f"data.datasets: source names must be unique (they prefix ids), "
                            f"repeated: {repeated}")
    items: list[QAItem] = []
    summary: dict = {"sources": {}, "left_out": {}}
    for source, rows in loaded:
        part, left_out = split_source(source, rows, cfg, seed)
        items += part
        summary["sources"][source.name] = dict(Counter(it.split for it in part))
        summary["left_out"][source.name] = left_out
    summary["items"] = dict(Counter(it.split for it in items))
    return items, summary
