"""The batch ledger: one SQLite file (WAL) per batch that says, per item, where it stands.

An item is `done` only after its outputs are on disk (written atomically, fsynced), in
one transaction with synchronous=FULL; so after kill -9 or a power cut a rerun skips
exactly the items that are done, and redoes at most the ones that were in flight
(`running`), never a finished one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import WorkflowError
from .items import Item

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, ord INTEGER NOT NULL, source TEXT NOT NULL, fields TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '', outputs TEXT NOT NULL DEFAULT '[]',
    steps TEXT NOT NULL DEFAULT '{}', started REAL, finished REAL);
CREATE INDEX IF NOT EXISTS items_status ON items(status, ord);
"""


@dataclass
class Row:
    id: str
    ord: int
    source: str
    fields: dict[str, Any]
    status: str
    attempts: int
    error: str
    outputs: list[str]
    steps: dict[str, float]
    started: float | None
    finished: float | None

    def item(self) -> Item:
        return Item(id=self.id, source=self.source, fields=self.fields)


@dataclass
class Counts:
    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class Ledger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise WorkflowError(
                f"The batch ledger {path} cannot be opened ({exc}).",
                "Choose another output folder, or delete that file to start the batch over.",
            ) from None

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------- the batch

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def bind(self, values: dict[str, str]) -> bool:
        """Record what this batch is; refuse a folder that holds a batch of another preset.
        True if the batch is new."""
        known = self.meta()
        if not known:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [*values.items(), ("created", str(time.time()))],
                )
            return True
        if known.get("preset_digest") != values.get("preset_digest"):
            raise WorkflowError(
                f"The output folder holds a batch of another preset ({known.get('preset')}, "
                "or the same preset with other settings).",
                "Choose another output folder with --out, or delete that folder to start over.",
            )
        return False

    def sync(self, items: Iterable[Item]) -> int:
        """Add items not yet in the ledger (new files in the folder); returns how many."""
        rows = [
            (it.id, i, it.source, json.dumps(it.fields, sort_keys=True))
            for i, it in enumerate(items)
        ]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            before = self.db.total_changes
            self.db.executemany(
                "INSERT OR IGNORE INTO items (id, ord, source, fields) VALUES (?, ?, ?, ?)", rows
            )
            return self.db.total_changes - before

    def recover(self, retry_failed: bool = False) -> int:
        """Items left `running` by a killed run (and failed ones, if asked) go back to pending."""
        statuses = (RUNNING, FAILED) if retry_failed else (RUNNING,)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(
                f"UPDATE items SET status='pending' WHERE status IN ({','.join('?' * len(statuses))})",
                statuses,
            )
            return cur.rowcount

    # ---------------------------------------------------------------- items

    def pending(self) -> list[Row]:
        return self._rows("WHERE status='pending' ORDER BY ord")

    def rows(self) -> list[Row]:
        return self._rows("ORDER BY ord")

    def _rows(self, where: str) -> list[Row]:
        cur = self.db.execute(
            f"SELECT id, ord, source, fields, status, attempts, error, outputs, steps, "
            f"started, finished FROM items {where}"
        )
        return [
            Row(
                r[0],
                r[1],
                r[2],
                json.loads(r[3]),
                r[4],
                r[5],
                r[6],
                json.loads(r[7]),
                json.loads(r[8]),
                r[9],
                r[10],
            )
            for r in cur.fetchall()
        ]

    def start(self, item_id: str) -> None:
        with self.db:
            self.db.execute(
                "UPDATE items SET status='running', attempts=attempts+1, started=?, error='' "
                "WHERE id=?",
                (time.time(), item_id),
            )

    def finish(self, item_id: str, outputs: list[str], steps: dict[str, float]) -> None:
        with self.db:
            self.db.execute(
                "UPDATE items SET status='done', outputs=?, steps=?, finished=? WHERE id=?",
                (json.dumps(outputs), json.dumps(steps), time.time(), item_id),
            )

    def requeue(self, item_id: str) -> None:
        """The item was cut short on purpose: pending again, as if never started."""
        with self.db:
            self.db.execute(
                "UPDATE items SET status='pending', attempts=MAX(0, attempts-1), "
                "started=NULL WHERE id=?",
                (item_id,),
            )

    def fail(self, item_id: str, error: str, steps: dict[str, float]) -> None:
        with self.db:
            self.db.execute(
                "UPDATE items SET status='failed', error=?, steps=?, finished=? WHERE id=?",
                (error[:2000], json.dumps(steps), time.time(), item_id),
            )

    def counts(self) -> Counts:
        by = dict(self.db.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall())
        return Counts(
            total=sum(by.values()),
            done=by.get(DONE, 0),
            failed=by.get(FAILED, 0),
            running=by.get(RUNNING, 0),
            pending=by.get(PENDING, 0),
            by_status=by,
        )


def write_atomic(path: Path, data: bytes) -> None:
    """Write, fsync, rename: a file that exists under its name is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
