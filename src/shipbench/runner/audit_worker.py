"""Audit a trial's workspace in a fresh process, so concurrent trials never share audit state.

Invariants: the child is started with the `spawn` method (no inherited locks, caches or detect-secrets
settings) and receives only paths; it answers with the audit JSON text or an error line; an audit that
runs past `timeout_s` is killed and raised as `AuditWorkerError`, never waited on forever.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from pathlib import Path

AUDIT_TIMEOUT_S = 900.0


class AuditWorkerError(Exception):
    """The audit process failed, died or ran out of time."""


def _child(conn: Connection, workspace: str, pack_root: str, gem_sources: dict[str, str]) -> None:
    try:
        from shipbench.audit.engine import audit_project
        from shipbench.audit.serialize import to_json

        result = audit_project(Path(workspace), pack_root, {k: Path(v) for k, v in gem_sources.items()})
        conn.send(("ok", to_json(result)))
    except BaseException as exc:  # the parent must hear of every failure, not just time out
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def audit_in_process(
    workspace: Path, pack_root: Path, gem_sources: dict[str, Path], timeout_s: float = AUDIT_TIMEOUT_S
) -> str:
    """The audit JSON of `workspace` against the task pack at `pack_root`, computed in a spawned process."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    sources = {k: str(v) for k, v in gem_sources.items()}
    process = ctx.Process(target=_child, args=(sender, str(workspace), str(pack_root), sources), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise AuditWorkerError(f"audit ran past {timeout_s:.0f} s and was stopped")
        status, payload = receiver.recv()
    except EOFError:
        process.join(5)
        raise AuditWorkerError(f"audit process died (exit code {process.exitcode})") from None
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join(5)
    if status != "ok":
        raise AuditWorkerError(str(payload))
    return str(payload)
