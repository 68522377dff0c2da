"""Decide the replay's answer to one request: which phase, which step, and which of the agent's tools to call.

Invariants: stateless (the answer depends only on the trajectory and the request); phase = the script whose
`match` occurs in the latest matching user prompt; step index = number of tool results after that prompt;
a tool call names only a tool the request offered, with the argument names its schema declares.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import uuid
from dataclasses import dataclass, field
from typing import Any

from shipbench.replay.conversation import Conversation, ToolSpec
from shipbench.replay.trajectory import Step, Trajectory

WRITE_TOOLS = ("write", "Write", "write_file")
SHELL_TOOLS = ("exec_command", "bash", "Bash", "run_shell_command", "shell_command", "shell")
HEREDOC = "SHIPBENCH_EOF"
DONE_TEXT = "Done: every scripted step has been replayed."
NO_TOOLS_TEXT = "Replay chat session"
UNSCRIPTED_TEXT = "The replay has no scripted phase for this prompt."
LOOP_COMMAND = "ls"
# Gemini CLI (0.61) denies its edit tools on "build files" when headless, whatever the approval mode; a model
# then writes them with the shell tool, and so does the replay.
GEMINI_BUILD_FILES = frozenset(
    {
        "Dockerfile",
        "Containerfile",
        "Makefile",
        "makefile",
        "GNUmakefile",
        "CMakeLists.txt",
        "package.json",
        "package-lock.json",
        "pnpm-lock.yaml",
        "yarn.lock",
        "bun.lockb",
        "setup.py",
        "setup.cfg",
        "pyproject.toml",
        "go.mod",
        "go.sum",
        "Cargo.toml",
        "Cargo.lock",
        "pom.xml",
        "build.gradle",
        "build.gradle.kts",
        "settings.gradle",
        "settings.gradle.kts",
        "BUILD",
        "BUILD.bazel",
        "WORKSPACE",
        "WORKSPACE.bazel",
        "MODULE.bazel",
        ".bazelrc",
        ".blazerc",
    }
)
GEMINI_BUILD_SUFFIXES = (".bzl", ".bazel", ".bzlmod", ".mk", ".cmake")


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    call_id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    @property
    def args_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    text: str = ""
    tool_call: ToolCall | None = None
    phase: int | None = None
    step: int | None = None

    @property
    def output_text(self) -> str:
        """What the output token count is computed from: the tool call's JSON arguments, or the text."""
        return self.tool_call.args_json if self.tool_call else self.text


def schema_instance(schema: object) -> Any:
    """A minimal value that satisfies a JSON schema (first enum value, required properties only)."""
    if not isinstance(schema, dict):
        return "replay"
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = str(schema.get("type", "object" if "properties" in schema or not schema else "string")).lower()
    if kind == "object":
        raw = schema.get("properties")
        props: dict[str, Any] = raw if isinstance(raw, dict) else {}
        required = schema.get("required")
        names = [n for n in required if n in props] if isinstance(required, list) else list(props)
        return {name: schema_instance(props[name]) for name in names}
    return {"array": [], "integer": 0, "number": 0, "boolean": False}.get(kind, "replay")


def _resolve(path: str, workspace: str | None) -> str:
    return path if not workspace or posixpath.isabs(path) else posixpath.join(workspace, path)


def _fill_required(spec: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    for name in spec.required:
        if name not in args:
            args[name] = schema_instance(spec.properties.get(name)) if name != "description" else "replay step"
    return args


def _first(conv: Conversation, names: tuple[str, ...]) -> ToolSpec | None:
    return next((spec for name in names if (spec := conv.tool(name))), None)


def shell_call(conv: Conversation, command: str) -> ToolCall | None:
    spec = _first(conv, SHELL_TOOLS)
    if spec is None:
        return None
    key = "cmd" if "cmd" in spec.properties or spec.name == "exec_command" else "command"
    prop = spec.properties.get(key)
    is_array = isinstance(prop, dict) and prop.get("type") == "array"
    value: Any = ["bash", "-lc", command] if is_array else command
    return ToolCall(spec.name, _fill_required(spec, {key: value}))


def heredoc_command(path: str, content: str) -> str:
    """A shell command that writes `content` to `path` (a missing final newline is added)."""
    body = content if content.endswith("\n") else content + "\n"
    parent = posixpath.dirname(path)
    mkdir = f"mkdir -p {shlex.quote(parent)} && " if parent else ""
    return f"{mkdir}cat > {shlex.quote(path)} <<'{HEREDOC}'\n{body}{HEREDOC}"


def _gemini_protected(path: str) -> bool:
    name = posixpath.basename(path)
    return (
        name in GEMINI_BUILD_FILES
        or name.startswith(("Dockerfile.", "Containerfile."))
        or name.lower().endswith(GEMINI_BUILD_SUFFIXES)
    )


def write_call(conv: Conversation, path: str, content: str) -> ToolCall | None:
    spec = _first(conv, WRITE_TOOLS)
    if spec is None or (spec.name == "write_file" and _gemini_protected(path)):
        return shell_call(conv, heredoc_command(path, content))
    default_key = "filePath" if spec.name == "write" else "file_path"
    key = next((k for k in ("filePath", "file_path", "path") if k in spec.properties), default_key)
    return ToolCall(spec.name, _fill_required(spec, {key: path, "content": content}))


def locate(trajectory: Trajectory, conv: Conversation) -> tuple[int, int] | None:
    """(phase index, step index) for this conversation, or None when no prompt matches a phase."""
    for pos in range(len(conv.entries) - 1, -1, -1):
        entry = conv.entries[pos]
        phase = trajectory.phase_for(entry.text) if entry.kind == "prompt" else None
        if phase is not None:
            results = sum(1 for e in conv.entries[pos + 1 :] if e.kind == "tool_result")
            return trajectory.phases.index(phase), results
    return None


def _act(conv: Conversation, step: Step, workspace: str | None) -> tuple[ToolCall | None, str]:
    if step.action == "write" and step.path is not None and step.content is not None:
        return write_call(conv, _resolve(step.path, workspace), step.content), ""
    if step.action == "shell" and step.command is not None:
        return shell_call(conv, step.command), ""
    return None, step.text or DONE_TEXT


def decide(trajectory: Trajectory, conv: Conversation, *, workspace: str | None, loop: bool = False) -> Reply:
    """The answer to one request. `loop` answers every turn with the phase's first step (a shell `ls` if
    that step is text), so an agent sees the same tool call forever."""
    if not conv.tools:
        return Reply(
            text=json.dumps(schema_instance(conv.json_schema)) if conv.json_schema is not None else NO_TOOLS_TEXT
        )
    where = locate(trajectory, conv)
    if where is None:
        return Reply(text=UNSCRIPTED_TEXT)
    phase, index = where
    steps = trajectory.phases[phase].steps
    if loop:
        index = 0
        if not steps or steps[0].action == "text":
            call = shell_call(conv, LOOP_COMMAND)
            return Reply(tool_call=call, phase=phase, step=0) if call else Reply(text=UNSCRIPTED_TEXT)
    if index >= len(steps):
        return Reply(text=DONE_TEXT, phase=phase, step=index)
    call, text = _act(conv, steps[index], workspace)
    if call is None and not text:
        text = f"The replay cannot act: no write or shell tool offered for step {index}."
    return Reply(text=text, tool_call=call, phase=phase, step=index)
