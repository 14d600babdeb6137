"""A persistent verdict cache shared by processes: SQLite in WAL mode on one host, or
PostgreSQL where several hosts grade (a multi-node run, sweep workers on other nodes).

SQLite's WAL mode keeps its index in shared memory, which a network filesystem does not
share between hosts (sqlite.org/wal.html), so a cache on a volume that two nodes mount must
be Postgres: `$RECALL_VERDICT_CACHE` (a postgresql:// URL; the cluster's Jobs get it from the
`recall-verdicts` Secret) names where the cache is whenever `judge.cache` turns it on. The
location is environment, not a param, so moving the cache reruns no stage.

Keyed by (judge model, prompt version, question, gold answers, normalised candidate), so a
verdict is reused only where the judge would see exactly the same input. Only parsed
verdicts (0/1) are stored; failures are never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
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


CACHE_ENV = "RECALL_VERDICT_CACHE"
POSTGRES_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")


def open_cache(path: str):
    """The verdict cache `judge.cache` turns on (`path`; empty: none, whatever the
    environment says): at $RECALL_VERDICT_CACHE when set, else at `path`. A postgresql://
    URL opens Postgres, anything else a SQLite file."""
    if not path:
        return None
    where = os.environ.get(CACHE_ENV) or path
    return PostgresVerdictCache(where) if where.startswith(POSTGRES_SCHEMES) else VerdictCache(where)


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


class PostgresVerdictCache:
    """VerdictCache's get_many / put_many over one Postgres table: safe for any number of
    hosts. Credentials come from the URL or libpq's PGUSER / PGPASSWORD."""

    def __init__(self, url: str):
        import psycopg

        self._psycopg = psycopg
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.where = self.url.split("@")[-1]  # for errors: never the password
        self._db = self._connect()

    def _connect(self):
        try:
            db = self._psycopg.connect(self.url, autocommit=True, connect_timeout=30)
        except self._psycopg.OperationalError as e:
            raise RuntimeError(f"verdict cache: cannot reach Postgres at {self.where} "
                               f"(${CACHE_ENV} or judge.cache): {e}") from e
        try:
            db.execute("CREATE TABLE IF NOT EXISTS verdicts "
                       "(key TEXT PRIMARY KEY, value INTEGER NOT NULL, reply TEXT)")
        except self._psycopg.errors.UniqueViolation:
            pass  # another host created it at the same moment
        return db

    def _run(self, work):
        """`work(db)`, once more on a fresh connection if the server dropped this one (a
        Postgres restart during a multi-day run)."""
        try:
            return work(self._db)
        except self._psycopg.OperationalError:
            self._db.close()
            self._db = self._connect()
            return work(self._db)

    def get_many(self, keys: Iterable[str]) -> dict[str, int]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        rows = self._run(lambda db: db.execute(
            "SELECT key, value FROM verdicts WHERE key = ANY(%s)", (keys,)).fetchall())
        return {key: int(value) for key, value in rows}

    def put_many(self, rows: Iterable[tuple[str, int, str]]) -> None:
        rows = list(rows)

        def insert(db):
            with db.transaction(), db.cursor() as cur:
                cur.executemany("INSERT INTO verdicts VALUES (%s, %s, %s) "
                                "ON CONFLICT (key) DO NOTHING", rows)
        if rows:
            self._run(insert)

    def __len__(self) -> int:
        return self._run(lambda db: db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])
