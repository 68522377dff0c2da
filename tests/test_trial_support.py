"""Shared helpers for the trial/suite tests: a tiny task pack, a scripted agent process, its adapter, /proc checks.

The scripted agent is a real Python process: it calls the real metering proxy with its lease token (OpenAI
chat wire, non-streaming), prints JSON lines, writes files in its workspace; what it does in each phase is
chosen by the test (ok, hang, crash, loop, partial-then-hang). Its adapter is a real AgentAdapter.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from shipbench.agents.base import AgentCapabilities, AgentEvent, Invocation, InvocationRequest, Usage
from shipbench.config import SuiteConfig
from shipbench.runner.killtree import MARKER_ENV

RUBRIC = """
[tiers]
A = 85
B = 70
C = 50

[[dimensions]]
id = "deliverables"
title = "Deliverables"
weight = 100

[rules."deliverables.missing"]
dimension = "deliverables"
points = 10
why = "test rule"
"""

AGENT_SCRIPT = r'''
import json, os, sys, time, urllib.request
prompt = sys.argv[1]
mode = os.environ["FAKE_MODE"]
print(json.dumps({"type": "session", "id": os.environ.get("FAKE_SESSION") or "sess-1"}), flush=True)
print(json.dumps({"type": "note", "token_echo": os.environ["FAKE_TOKEN"]}), flush=True)
def call():
    body = json.dumps({"model": os.environ["FAKE_MODEL"], "messages": [{"role": "user", "content": prompt}]}).encode()
    req = urllib.request.Request(os.environ["FAKE_BASE"] + "/v1/chat/completions", data=body,
                                 headers={"Authorization": "Bearer " + os.environ["FAKE_TOKEN"],
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = json.load(resp)
    except urllib.error.HTTPError as exc:
        print(json.dumps({"type": "error", "status": exc.code}), flush=True)
        return None
    u = data.get("usage") or {}
    print(json.dumps({"type": "usage", "in": u.get("prompt_tokens", 0), "out": u.get("completion_tokens", 0)}),
          flush=True)
    return data
if mode == "crash-before-calling":
    sys.exit(3)
if mode == "crash":
    call()
    sys.exit(3)
if mode == "partial-hang":
    open("partial.txt", "w").write("half done\n")
    time.sleep(3600)
if mode == "hang":
    time.sleep(3600)
if mode == "loop":
    while True:
        print(json.dumps({"type": "tool", "name": "bash", "input": {"command": "ls"}}), flush=True)
        time.sleep(0.05)
if mode == "peek":  # reads a file it was told about, the way an agent's shell tool would
    target = os.environ["FAKE_PEEK"]
    print(json.dumps({"type": "tool", "name": "bash", "input": {"command": "cat " + target}}), flush=True)
    open(target).read()
if mode == "fifo":  # an agent that leaves a named pipe where a source file would be
    os.makedirs("app/models", exist_ok=True)
    os.mkfifo("app/models/pipe.rb")
if mode == "spend":
    for _ in range(50):
        if call() is None:
            break
    time.sleep(3600)
call()
name = os.environ["FAKE_FILE"]
print(json.dumps({"type": "tool", "name": "write", "input": {"path": name}}), flush=True)
open(name, "w").write("written by the scripted agent\n")
print(json.dumps({"type": "text", "text": "Done with " + name}), flush=True)
print(json.dumps({"type": "done"}), flush=True)
'''


def reported_usage(requests: list[dict[str, object]]) -> list[dict[str, int]]:
    """The usage the replay upstream reported, one dict per answered model call."""
    out: list[dict[str, int]] = []
    for r in requests:
        usage = r.get("usage")
        if isinstance(usage, dict):
            out.append({str(k): int(v) for k, v in usage.items()})
    return out


def write_task(root: Path, phases: dict[str, str]) -> Path:
    """A minimal valid task pack with the given phases (id -> prompt)."""
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    lines = ['id = "tiny"', 'title = "tiny task"', 'checks = "checks"']
    for pid, prompt in phases.items():
        (root / "prompts" / f"{pid}.md").write_text(prompt, encoding="utf-8")
        lines += ["", "[[phases]]", f'id = "{pid}"', f'prompt = "prompts/{pid}.md"']
    lines += ["", "[[requirements]]", 'id = "R1"', 'text = "write the files"']
    (root / "task.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "rubric.toml").write_text(RUBRIC, encoding="utf-8")
    (root / "checks.py").write_text("CHECKS = []\n", encoding="utf-8")
    return root


def suite_config(task: Path, **extra: object) -> SuiteConfig:
    data: dict[str, object] = {
        "name": "t",
        "task": str(task),
        "agents": [{"name": "fake"}],
        "models": [{"id": "rp", "model": "replay-model", "provider": "replay"}],
        "limits": {"idle_s": 30, "phase_wall_s": 60, "grace_s": 1, "loop_repeats": 4},
        # the fake agent is this interpreter running a script outside the workspace: nothing a sandbox shows it
        # (tests/test_sandbox.py runs agents inside one)
        "sandbox": {"backend": "none"},
    }
    data.update(extra)
    return SuiteConfig.model_validate(data)


class FakeAdapter:
    """An AgentAdapter for the scripted agent; `modes` maps a phase prompt substring to a behaviour."""

    def __init__(self, script: Path, modes: dict[str, str]) -> None:
        self.script = script
        self.modes = modes
        self.requests: list[InvocationRequest] = []
        self.peek = ""  # the file mode "peek" reads
        self.capabilities = AgentCapabilities(
            name="fake", npm_package="fake-agent", npm_version="1.0.0", binary="python3", wire_api="openai_chat",
            continues_session=True, subagents=False, delegation_tools=frozenset({"task"}),
            write_tools=("write",), shell_tools=("bash",),
        )

    def invocation(self, request: InvocationRequest) -> Invocation:
        self.requests.append(request)
        key = next((k for k in self.modes if k in request.prompt), None)
        mode = self.modes[key] if key else "ok"
        fname = request.prompt.split("FILE=")[-1].split()[0] if "FILE=" in request.prompt else "out.txt"
        env = {
            "PATH": os.environ.get("PATH", ""), "HOME": str(request.home), "FAKE_MODE": mode,
            "FAKE_BASE": request.base_url, "FAKE_TOKEN": request.token, "FAKE_MODEL": request.model,
            "FAKE_FILE": fname, "FAKE_SESSION": request.session_id or "", "FAKE_PEEK": self.peek,
        }
        return Invocation(argv=[sys.executable, str(self.script), request.prompt], env=env)

    def parse_line(self, line: str) -> list[AgentEvent]:
        try:
            data = json.loads(line)
        except ValueError:
            return [AgentEvent(kind="unparsed", text=line[:200])]
        kind = data.get("type")
        if kind == "session":
            return [AgentEvent(kind="session", raw_type=kind, session_id=data["id"])]
        if kind == "usage":
            return [AgentEvent(kind="usage", raw_type=kind,
                               usage=Usage(input_tokens=data["in"], output_tokens=data["out"]))]
        if kind == "tool":
            return [AgentEvent(kind="tool_call", raw_type=kind, tool=data["name"],
                               tool_input=json.dumps(data["input"], sort_keys=True))]
        if kind == "text":
            return [AgentEvent(kind="text", raw_type=kind, text=data["text"])]
        if kind == "error":
            return [AgentEvent(kind="error", raw_type=kind, text=str(data.get("status")))]
        if kind == "done":
            return [AgentEvent(kind="terminal", raw_type=kind)]
        return [AgentEvent(kind="unparsed", raw_type=str(kind))]

    def parse_version(self, output: str) -> str:
        return output.strip()


def marked_processes(prefix: str = "shipbench-") -> list[int]:
    """Pids of live processes whose environment carries a shipbench trial marker."""
    found: list[int] = []
    needle = f"{MARKER_ENV}={prefix}".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry.name}/environ").read_bytes()
            state = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z" and any(part.startswith(needle) for part in env.split(b"\0")):
            found.append(int(entry.name))
    return found


def script_file(tmp: Path) -> Path:
    path = tmp / "fake_agent.py"
    path.write_text(AGENT_SCRIPT, encoding="utf-8")
    return path


def trial_marker_prefix(trial_root: Path) -> str:
    import hashlib

    return "shipbench-" + hashlib.sha256(str(trial_root.resolve()).encode()).hexdigest()[:16]
