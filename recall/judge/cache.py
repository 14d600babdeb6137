"""A persistent verdict cache shared by processes: SQLite in WAL mode.

Keyed by (judge model, prompt version, question, gold answers, normalised candidate), so a
verdict is reused only where the judge would see exactly the same input. Only parsed
verdicts (0/1) are stored; failures are never cached.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

from recall.judge.rules import normalize_answer
from recall.staging import weights_digest


def model_identity(model: str) -> str:
    """What the cache calls a judge: a served name as it is; a local model directory by its
    weights too, so a judge retrained at the same path never reads the old judge's verdicts."""
    return f"{model}@{weights_digest(model)}" if Path(model).is_dir() else model


def verdict_key(model: str, prompt_version: str, question: str, answers: Sequence[str],
                candidate: str) -> str:
    blob = json.dumps([model, prompt_version, question, sorted(answers),
                       normalize_answer(candidate)], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class VerdictCache:
    """get_many / put_many over one SQLite file; safe for concurrent readers and writers."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A generous busy timeout: training ranks and analysis processes write concurrently.
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS verdicts "
                         "(key TEXT PRIMARY KEY, value INTEGER NOT NULL, reply TEXT)")

    def get_many(self, keys: Iterable[str]) -> dict[str, int]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, int] = {}
        for start in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._db.execute(
                    f"SELECT key, value FROM verdicts WHERE key IN ({marks})", chunk):
                found[key] = int(value)
        return found

    def put_many(self, rows: Iterable[tuple[str, int, str]]) -> None:
        rows = list(rows)
        if rows:
            self._db.execute("BEGIN IMMEDIATE")  # one write transaction per batch
            try:
                self._db.executemany("INSERT OR IGNORE INTO verdicts VALUES (?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
