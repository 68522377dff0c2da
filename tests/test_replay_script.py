"""Replay step logic: phase matching, step index, tool choice per agent tool list, shell heredocs, schemas."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from shipbench.replay.conversation import infer_workdir, parse_request
from shipbench.replay.script import DONE_TEXT, NO_TOOLS_TEXT, UNSCRIPTED_TEXT, decide, heredoc_command, schema_instance
from shipbench.replay.trajectory import PhaseScript, Step, Trajectory

TRAJ = Trajectory(
    name="t",
    phases=[
        PhaseScript(
            match="BUILD-IT",
            steps=[
                Step(action="write", path="a/one.txt", content="one\n"),
                Step(action="shell", command="ls -la"),
                Step(action="text", text="built"),
            ],
        ),
        PhaseScript(match="CHECK-IT", steps=[Step(action="shell", command="true"), Step(action="text", text="ok")]),
    ],
)


def fn(name: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"properties": props, "required": required}}}


S = {"type": "string"}
OPENCODE_TOOLS = [
    fn("bash", {"command": S, "description": S, "timeout": {"type": "number"}}, ["command", "description"]),
    fn("read", {"filePath": S}, ["filePath"]),
    fn("write", {"filePath": S, "content": S}, ["filePath", "content"]),
]


def chat_body(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"model": "m", "messages": messages, "tools": OPENCODE_TOOLS if tools is None else tools}


def tool_turn(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "write", "arguments": "{}"}}
        out += [{"role": "assistant", "tool_calls": [call]}, {"role": "tool", "tool_call_id": f"c{i}", "content": "ok"}]
    return out


def test_step_index_counts_tool_results_after_the_matching_prompt() -> None:
    base = [{"role": "system", "content": "sys"}, {"role": "user", "content": "please BUILD-IT now"}]
    replies = [
        decide(TRAJ, parse_request("openai_chat", chat_body(base + tool_turn(n))), workspace="/ws") for n in range(4)
    ]
    assert replies[0].tool_call is not None and replies[0].tool_call.name == "write"
    assert replies[0].tool_call.arguments == {"filePath": "/ws/a/one.txt", "content": "one\n"}
    assert replies[1].tool_call is not None and replies[1].tool_call.name == "bash"
    assert replies[1].tool_call.arguments == {"command": "ls -la", "description": "replay step"}
    assert (replies[2].tool_call, replies[2].text, replies[2].step) == (None, "built", 2)
    assert (replies[3].text, replies[3].step) == (DONE_TEXT, 3)


def test_continued_session_uses_the_latest_matching_prompt() -> None:
    msgs = [{"role": "user", "content": "BUILD-IT"}, *tool_turn(2), {"role": "assistant", "content": "built"}]
    msgs += [{"role": "user", "content": [{"type": "text", "text": "now CHECK-IT please"}]}]
    reply = decide(TRAJ, parse_request("openai_chat", chat_body(msgs)), workspace=None)
    assert (reply.phase, reply.step) == (1, 0)
    assert reply.tool_call is not None and reply.tool_call.arguments["command"] == "true"
    reply = decide(TRAJ, parse_request("openai_chat", chat_body(msgs + tool_turn(1))), workspace=None)
    assert (reply.phase, reply.step, reply.text) == (1, 1, "ok")


def test_text_beside_tool_results_does_not_reset_the_step() -> None:
    user = {"role": "user", "content": [{"type": "text", "text": "<ctx/>"}, {"type": "text", "text": "BUILD-IT"}]}
    use = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Write", "input": {}}]}
    result = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
            {"type": "text", "text": "<system-reminder>BUILD-IT mentioned again</system-reminder>"},
        ],
    }
    tools = [{"name": "Bash", "input_schema": {"properties": {"command": S}, "required": ["command"]}}]
    conv = parse_request("anthropic", {"model": "c", "messages": [user, use, result], "tools": tools})
    reply = decide(TRAJ, conv, workspace=None)
    assert reply.step == 1 and reply.tool_call is not None
    assert reply.tool_call.arguments == {"command": "ls -la"}


def test_unmatched_prompt_and_tool_free_requests_get_short_text() -> None:
    conv = parse_request("openai_chat", chat_body([{"role": "user", "content": "something else"}]))
    assert decide(TRAJ, conv, workspace=None).text == UNSCRIPTED_TEXT
    titles = parse_request("openai_chat", chat_body([{"role": "user", "content": "BUILD-IT"}], tools=[]))
    assert decide(TRAJ, titles, workspace=None).text == NO_TOOLS_TEXT


def test_write_tool_per_agent() -> None:
    claude = {"name": "Write", "input_schema": {"properties": {"file_path": S, "content": S}}}
    conv = parse_request("anthropic", {"messages": [{"role": "user", "content": "BUILD-IT"}], "tools": [claude]})
    call = decide(TRAJ, conv, workspace="/w").tool_call
    assert call is not None and (call.name, call.arguments) == (
        "Write",
        {"file_path": "/w/a/one.txt", "content": "one\n"},
    )
    decl = {"name": "write_file", "parametersJsonSchema": {"properties": {"file_path": S, "content": S}}}
    gem = {"contents": [{"role": "user", "parts": [{"text": "BUILD-IT"}]}], "tools": [{"functionDeclarations": [decl]}]}
    call = decide(TRAJ, parse_request("gemini", gem), workspace=None).tool_call
    assert call is not None and call.arguments == {"file_path": "a/one.txt", "content": "one\n"}


def test_codex_without_write_tool_gets_a_heredoc_through_exec_command(tmp_path: Path) -> None:
    tools = [
        {"type": "function", "name": "exec_command", "parameters": {"properties": {"cmd": S}, "required": ["cmd"]}},
        {"type": "namespace", "name": "mcp", "tools": [{"type": "function", "name": "inner", "parameters": {}}]},
    ]
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<cwd>/x</cwd>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "BUILD-IT"}]},
    ]
    conv = parse_request("openai_responses", {"model": "gpt", "input": items, "tools": tools})
    assert [t.name for t in conv.tools] == ["exec_command", "inner"]
    assert infer_workdir(conv) == "/x"
    call = decide(TRAJ, conv, workspace=str(tmp_path)).tool_call
    assert call is not None and call.name == "exec_command"
    subprocess.run(["bash", "-c", call.arguments["cmd"]], check=True)
    assert (tmp_path / "a" / "one.txt").read_text() == "one\n"


def test_heredoc_keeps_shell_metacharacters_verbatim(tmp_path: Path) -> None:
    content = "x = `rm -rf /` $HOME \"q\" 'a' \\n\nSHIPBENCH_EOF_NOT\nlast line without newline"
    target = tmp_path / "sub dir" / "f.rb"
    subprocess.run(["bash", "-c", heredoc_command(str(target), content)], check=True)
    assert target.read_text() == content + "\n"


def test_gemini_build_files_go_through_the_shell_tool() -> None:
    traj = Trajectory(
        name="d", phases=[PhaseScript(match="GO", steps=[Step(action="write", path="Dockerfile", content="FROM x\n")])]
    )
    decls = [
        {"name": "write_file", "parameters": {"properties": {"file_path": S, "content": S}}},
        {"name": "run_shell_command", "parameters": {"properties": {"command": S}, "required": ["command"]}},
    ]
    body = {"contents": [{"role": "user", "parts": [{"text": "GO"}]}], "tools": [{"functionDeclarations": decls}]}
    call = decide(traj, parse_request("gemini", body), workspace="/w").tool_call
    assert call is not None and call.name == "run_shell_command"
    assert call.arguments["command"].startswith("mkdir -p /w && cat > /w/Dockerfile <<'SHIPBENCH_EOF'\nFROM x\n")


def test_shell_tool_taking_an_argv_array() -> None:
    tools = [{"type": "function", "name": "shell", "parameters": {"properties": {"command": {"type": "array"}}}}]
    conv = parse_request("openai_responses", {"input": "CHECK-IT", "tools": tools})
    call = decide(TRAJ, conv, workspace=None).tool_call
    assert call is not None and call.arguments == {"command": ["bash", "-lc", "true"]}


def test_loop_fault_repeats_the_first_step() -> None:
    msgs = [{"role": "user", "content": "BUILD-IT"}, *tool_turn(5)]
    reply = decide(TRAJ, parse_request("openai_chat", chat_body(msgs)), workspace="/ws", loop=True)
    assert reply.step == 0 and reply.tool_call is not None and reply.tool_call.name == "write"
    msgs = [{"role": "user", "content": "CHECK-IT"}, *tool_turn(5)]
    only_text = Trajectory(name="x", phases=[PhaseScript(match="CHECK-IT", steps=[Step(action="text", text="t")])])
    reply = decide(only_text, parse_request("openai_chat", chat_body(msgs)), workspace=None, loop=True)
    assert reply.tool_call is not None and reply.tool_call.arguments["command"] == "ls"


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            {
                "type": "OBJECT",
                "properties": {
                    "next_speaker": {"type": "STRING", "enum": ["user", "model"]},
                    "reasoning": {"type": "STRING"},
                },
                "required": ["next_speaker"],
            },
            {"next_speaker": "user"},
        ),
        ({"type": "object", "properties": {"c": {"type": "number"}, "b": {"type": "boolean"}}}, {"c": 0, "b": False}),
        ({}, {}),
    ],
)
def test_schema_instance(schema: dict[str, Any], expected: object) -> None:
    assert schema_instance(schema) == expected


def test_json_schema_request_without_tools_gets_json() -> None:
    gen = {"responseJsonSchema": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}}
    body = {"contents": [{"role": "user", "parts": [{"text": "anything"}]}], "generationConfig": gen}
    assert decide(TRAJ, parse_request("gemini", body), workspace=None).text == '{"x": 0}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<env>\n  Working directory: /tmp/ws-1\n</env>", "/tmp/ws-1"),
        (" - Primary working directory: /srv/a\n - Is a git repo", "/srv/a"),
        ("- **Workspace Directories:**\n  - /home/u/proj\n- **Directory", "/home/u/proj"),
        ("nothing here", None),
    ],
)
def test_infer_workdir(text: str, expected: str | None) -> None:
    conv = parse_request("openai_chat", {"messages": [{"role": "system", "content": text}]})
    assert infer_workdir(conv) == expected
