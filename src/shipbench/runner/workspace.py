"""The trial workspace as a git repository: a fresh `git init` with an empty base commit, one commit per phase.

Invariants: git never walks above the trial dir (GIT_CEILING_DIRECTORIES) and never reads the user's
global config (HOME points at the trial's private home, GIT_CONFIG_NOSYSTEM); every finished phase is
tagged `shipbench/phase-<n>` (the base is `shipbench/base`) so a resumed phase restarts from the state
its predecessor left; git failures raise `WorkspaceError` (the trial reports infra_error). Given a `wrap`
(the trial's sandbox), every git command runs inside it: the agent writes .git/config, .gitattributes and HOME,
so a filter, fsmonitor or hook it planted runs sandboxed, never with the harness's view of the machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

BASE_TAG = "shipbench/base"
EXCLUDES = ("node_modules/", "vendor/bundle/", ".bundle/", "tmp/", "log/")
Wrap = Callable[[list[str]], list[str]]  # argv -> the sandboxed argv (shipbench.sandbox)


class WorkspaceError(Exception):
    pass


def _git_env(workspace: Path, home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_CEILING_DIRECTORIES": str(workspace.resolve().parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "shipbench",
        "GIT_AUTHOR_EMAIL": "shipbench@localhost",
        "GIT_COMMITTER_NAME": "shipbench",
        "GIT_COMMITTER_EMAIL": "shipbench@localhost",
    }


async def git(workspace: Path, home: Path, *args: str, check: bool = True, wrap: Wrap | None = None) -> str:
    argv = ["git", *args]
    proc = await asyncio.create_subprocess_exec(
        *(wrap(argv) if wrap else argv), cwd=workspace, env=_git_env(workspace, home),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, errb = await proc.communicate()
    if check and proc.returncode != 0:
        raise WorkspaceError(f"git {' '.join(args)} failed ({proc.returncode}): {errb.decode(errors='replace')[-500:]}")
    return out.decode(errors="replace")


async def init_workspace(workspace: Path, home: Path, wrap: Wrap | None = None) -> None:
    """Create an empty workspace repository with a local identity and an empty base commit."""
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    home.mkdir(parents=True, exist_ok=True)
    await git(workspace, home, "init", "-q", "-b", "main", wrap=wrap)
    await git(workspace, home, "config", "user.name", "shipbench", wrap=wrap)
    await git(workspace, home, "config", "user.email", "shipbench@localhost", wrap=wrap)
    await git(workspace, home, "config", "commit.gpgsign", "false", wrap=wrap)
    (workspace / ".git" / "info").mkdir(parents=True, exist_ok=True)
    (workspace / ".git" / "info" / "exclude").write_text("\n".join(EXCLUDES) + "\n", encoding="utf-8")
    await git(workspace, home, "commit", "-q", "--allow-empty", "-m", "shipbench: empty workspace", wrap=wrap)
    await git(workspace, home, "tag", "-f", BASE_TAG, wrap=wrap)


def phase_tag(n: int) -> str:
    return f"shipbench/phase-{n}"


async def commit_phase(workspace: Path, home: Path, n: int, phase_id: str, wrap: Wrap | None = None) -> list[str]:
    """Stage everything, list what the phase changed, commit and tag it. Returns the changed paths."""
    await git(workspace, home, "add", "-A", wrap=wrap)
    names = await git(workspace, home, "diff", "--cached", "--name-only", "--no-renames", wrap=wrap)
    message = f"shipbench: phase {n} {phase_id}"
    await git(workspace, home, "commit", "-q", "--allow-empty", "--no-verify", "-m", message, wrap=wrap)
    await git(workspace, home, "tag", "-f", phase_tag(n), wrap=wrap)
    return [line for line in names.splitlines() if line]


async def reset_to(workspace: Path, home: Path, tag: str, wrap: Wrap | None = None) -> None:
    """Throw away an interrupted phase's changes: back to `tag`, untracked files removed."""
    await git(workspace, home, "reset", "-q", "--hard", tag, wrap=wrap)
    await git(workspace, home, "clean", "-q", "-ffdx", wrap=wrap)
