"""SQLite index of a suite's trials (`<out>/<suite>/index.sqlite`), rebuildable from the trial dirs.

Invariants: the trial directories are the truth; the index only mirrors trial.json (the full JSON is
kept in column `json`) and `rebuild_index` reproduces it from scratch; writers in one process are
serialised by a per-file lock, each write is one transaction on a short-lived connection.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from shipbench.store.layout import SuitePaths
from shipbench.store.records import TrialRecord, load_trial

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()

SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
  trial_id TEXT PRIMARY KEY,
  suite TEXT NOT NULL,
  task TEXT NOT NULL,
  agent TEXT NOT NULL,
  model_id TEXT NOT NULL,
  model TEXT NOT NULL,
  provider TEXT NOT NULL,
  repeat INTEGER NOT NULL,
  replay INTEGER NOT NULL,
  status TEXT NOT NULL,
  failure_class TEXT NOT NULL,
  audit_score INTEGER,
  audit_tier TEXT,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cache_read_tokens INTEGER NOT NULL,
  cache_write_tokens INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  wall_s REAL NOT NULL,
  agent_cli TEXT,
  updated_at TEXT NOT NULL,
  json TEXT NOT NULL
)
"""
COLUMNS = (
    "trial_id", "suite", "task", "agent", "model_id", "model", "provider", "repeat", "replay", "status",
    "failure_class", "audit_score", "audit_tier", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "cost_usd", "wall_s", "agent_cli", "updated_at", "json",
)
_UPSERT = f"INSERT OR REPLACE INTO trials ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def _lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30)
    conn.execute(SCHEMA)
    return conn


def _row(record: TrialRecord) -> tuple[object, ...]:
    u = record.usage
    return (
        record.trial_id, record.suite, record.task, record.agent, record.model_id, record.model, record.provider,
        record.repeat, int(record.replay), record.status, record.failure_class, record.audit_score,
        record.audit_tier, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
        record.cost_usd, record.wall_s, record.versions.agent_cli, record.updated_at.isoformat(),
        record.model_dump_json(),
    )


def upsert(suite_paths: SuitePaths, record: TrialRecord) -> None:
    with _lock(suite_paths.index), closing(_connect(suite_paths.index)) as conn, conn:
        conn.execute(_UPSERT, _row(record))


def rebuild_index(suite_paths: SuitePaths) -> int:
    """Recreate the index from every readable trial.json; returns the number of trials indexed."""
    records: list[TrialRecord] = []
    for trial in suite_paths.trials():
        try:
            records.append(load_trial(trial.record))
        except (OSError, ValueError):
            continue  # unreadable trial.json: not indexed (the dir is still the truth)
    with _lock(suite_paths.index), closing(_connect(suite_paths.index)) as conn, conn:
        conn.execute("DELETE FROM trials")
        conn.executemany(_UPSERT, [_row(r) for r in records])
    return len(records)


def query(suite_paths: SuitePaths, where: str = "", params: tuple[object, ...] = ()) -> list[dict[str, object]]:
    """Rows of the index as dicts (without the JSON column), ordered by trial id."""
    if not suite_paths.index.is_file():
        return []
    with _lock(suite_paths.index), closing(_connect(suite_paths.index)) as conn:
        conn.row_factory = sqlite3.Row
        sql = f"SELECT * FROM trials {('WHERE ' + where) if where else ''} ORDER BY trial_id"
        rows = conn.execute(sql, params).fetchall()
    return [{k: row[k] for k in row.keys() if k != "json"} for row in rows]  # noqa: SIM118 (Row iterates values)
