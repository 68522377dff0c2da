"""SQLite index: upsert mirrors trial.json, rebuild reproduces it from the trial dirs, concurrent writers are safe."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from shipbench.agents.base import Usage
from shipbench.store.index import query, rebuild_index, upsert
from shipbench.store.layout import SuitePaths
from shipbench.store.records import TrialRecord, Versions, save_trial


def _record(n: int, status: str = "completed", score: int | None = 70) -> TrialRecord:
    now = datetime.now(UTC)
    return TrialRecord(
        trial_id=f"rails-chat__codex__m__r{n}", suite="s", task="rails-chat", agent="codex", model_id="m",
        model="vendor/m", provider="replay", repeat=n, versions=Versions(shipbench="0.1.0", task="rails-chat"),
        status=status,
        created_at=now, updated_at=now, usage=Usage(input_tokens=10 * n, output_tokens=n, cache_read_tokens=2),
        cost_usd=0.5 * n, audit_score=score, audit_tier="C" if score else None,
    )


def test_upsert_then_query(tmp_path: Path) -> None:
    paths = SuitePaths(tmp_path / "s")
    upsert(paths, _record(1, "running", None))
    upsert(paths, _record(1))  # same trial: replaced, not duplicated
    upsert(paths, _record(2, "loop", 40))
    rows = query(paths)
    assert [(r["trial_id"], r["status"], r["audit_score"]) for r in rows] == [
        ("rails-chat__codex__m__r1", "completed", 70),
        ("rails-chat__codex__m__r2", "loop", 40),
    ]
    assert rows[1]["input_tokens"] == 20 and rows[1]["cost_usd"] == 1.0 and rows[1]["cache_read_tokens"] == 2
    assert query(paths, "status = ?", ("loop",))[0]["repeat"] == 2


def test_rebuild_from_trial_dirs(tmp_path: Path) -> None:
    paths = SuitePaths(tmp_path / "s")
    for n in (1, 2, 3):
        save_trial(paths.trial(f"rails-chat__codex__m__r{n}").record, _record(n))
    (paths.root / "broken").mkdir()
    (paths.root / "broken" / "trial.json").write_text("{not json")
    upsert(paths, _record(9))  # stale row with no trial dir: gone after the rebuild
    assert rebuild_index(paths) == 3
    assert [r["repeat"] for r in query(paths)] == [1, 2, 3]
    paths.index.unlink()
    assert rebuild_index(paths) == 3
    with sqlite3.connect(paths.index) as conn:
        (json_text,) = conn.execute("SELECT json FROM trials WHERE repeat = 2").fetchone()
    assert TrialRecord.model_validate_json(json_text) == _record(2).model_copy(
        update={"created_at": TrialRecord.model_validate_json(json_text).created_at,
                "updated_at": TrialRecord.model_validate_json(json_text).updated_at}
    )


def test_concurrent_upserts(tmp_path: Path) -> None:
    paths = SuitePaths(tmp_path / "s")
    errors: list[BaseException] = []

    def work(start: int) -> None:
        try:
            for n in range(start, start + 25):
                upsert(paths, _record(n))
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i * 25,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(query(paths)) == 100
