"""Stream parsing of the four agent adapters: real sample streams event by event, edge cases, garbage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shipbench.agents.base import AgentAdapter, AgentEvent, Usage
from shipbench.agents.claude import ClaudeAdapter
from shipbench.agents.codex import CodexAdapter
from shipbench.agents.gemini import GeminiAdapter
from shipbench.agents.opencode import OpencodeAdapter
from shipbench.agents.registry import ADAPTERS, get_adapter

SAMPLES = Path(__file__).parent / "fixtures" / "agent_streams"


def parse_file(adapter: AgentAdapter, name: str) -> list[AgentEvent]:
    lines = (SAMPLES / name).read_text(encoding="utf-8").splitlines()
    return [event for line in lines for event in adapter.parse_line(line)]


def dump(events: list[AgentEvent]) -> list[dict[str, Any]]:
    return [e.model_dump(exclude_defaults=True, exclude_none=True) for e in events]


def total(events: list[AgentEvent]) -> Usage:
    return sum((e.usage for e in events if e.usage is not None), Usage())


def u(i: int = 0, o: int = 0, cr: int = 0, cw: int = 0, r: int = 0) -> dict[str, int]:
    d = {"input_tokens": i, "output_tokens": o, "cache_read_tokens": cr, "cache_write_tokens": cw,
         "reasoning_tokens": r}
    return {k: v for k, v in d.items() if v}


OC_SID = "ses_df5dce07cffeVRnt5223kyaox4"


def test_opencode_sample_stream_exact() -> None:
    events = parse_file(OpencodeAdapter(), "opencode_run_format_json.jsonl")
    assert dump(events) == [
        {"kind": "session", "raw_type": "step_start", "session_id": OC_SID},
        {"kind": "tool_call", "raw_type": "tool_use", "session_id": OC_SID, "tool": "write",
         "tool_input": '{"filePath":"/tmp/probe/ws-oc/hello.txt","content":"hello from fake llm\\n"}'},
        {"kind": "tool_result", "raw_type": "tool_use", "session_id": OC_SID, "tool": "write",
         "text": "Wrote file successfully."},
        {"kind": "step", "raw_type": "step_finish", "session_id": OC_SID, "usage": u(10, 5)},
        {"kind": "session", "raw_type": "step_start", "session_id": OC_SID},
        {"kind": "text", "raw_type": "text", "session_id": OC_SID, "text": "Done: I created the file."},
        {"kind": "step", "raw_type": "step_finish", "session_id": OC_SID, "usage": u(10, 5)},
        {"kind": "terminal", "raw_type": "step_finish", "session_id": OC_SID},
    ]
    assert total(events) == Usage(input_tokens=20, output_tokens=10)


def test_opencode_real_model_stream_zero_usage() -> None:
    events = parse_file(OpencodeAdapter(), "opencode_real_gemma270m.jsonl")
    assert [e.kind for e in events] == ["session", "text", "step", "terminal"]
    assert events[1].text is not None and events[1].text.startswith('"Hello" mendatanguser')
    assert events[2].usage is None  # all-zero usage is not reported as usage
    assert total(events) == Usage()


def test_opencode_usage_normalisation_delegation_and_errors() -> None:
    a = OpencodeAdapter()
    step = {"type": "step_finish", "sessionID": "s", "part": {"reason": "tool-calls", "tokens": {
        "input": 100, "output": 30, "reasoning": 12, "cache": {"read": 400, "write": 7}}}}
    [ev] = a.parse_line(json.dumps(step))
    # opencode's output excludes reasoning: normalised output = output + reasoning; cache stays apart
    assert ev.usage == Usage(input_tokens=100, output_tokens=42, cache_read_tokens=400, cache_write_tokens=7,
                             reasoning_tokens=12)
    task = {"type": "tool_use", "sessionID": "s", "part": {"tool": "task", "state": {
        "status": "error", "input": {"subagent_type": "helper", "prompt": "do it"}, "error": "boom"}}}
    call, result = a.parse_line(json.dumps(task))
    assert call.delegation and call.tool == "task" and not result.delegation
    assert result.is_error and result.text == "boom"
    err = {"type": "error", "sessionID": "s", "error": {"name": "APIError", "data": {"message": "Cannot connect"}}}
    assert dump(a.parse_line(json.dumps(err))) == [
        {"kind": "error", "raw_type": "error", "session_id": "s", "text": "Cannot connect"},
        {"kind": "terminal", "raw_type": "error", "session_id": "s", "is_error": True, "text": "Cannot connect"},
    ]
    length = {"type": "step_finish", "part": {"reason": "length", "tokens": {"input": 1, "output": 2}}}
    assert [e.kind for e in a.parse_line(json.dumps(length))] == ["step", "terminal"]


CX_TID = "01a20a25-79e0-7413-9b69-7fd96c147438"


def test_codex_sample_stream_exact() -> None:
    events = parse_file(CodexAdapter(), "codex_exec_json.jsonl")
    command = "/bin/bash -lc \"printf 'hello from fake llm\\\\n' > /tmp/probe/ws-cx/hello.txt\""
    assert dump(events) == [
        {"kind": "session", "raw_type": "thread.started", "session_id": CX_TID},
        {"kind": "notice", "raw_type": "item.error", "text": "Model metadata for `fake` not found. Defaulting to "
         "fallback metadata; this can degrade performance and cause issues."},
        {"kind": "tool_call", "raw_type": "command_execution", "tool": "command_execution",
         "tool_input": json.dumps({"command": command}, separators=(",", ":"))},
        {"kind": "tool_result", "raw_type": "command_execution", "tool": "command_execution", "text": ""},
        {"kind": "text", "raw_type": "agent_message", "text": "Done: I created the file."},
        {"kind": "step", "raw_type": "turn.completed", "usage": u(20, 10)},
        {"kind": "terminal", "raw_type": "turn.completed"},
    ]
    assert total(events) == Usage(input_tokens=20, output_tokens=10)


def test_codex_resume_uses_the_rollout_baseline(tmp_path: Path) -> None:
    """After `exec resume`, turn.completed is cumulative over the thread: a FRESH adapter (new harness
    process) must subtract the total recorded in codex's rollout file for that thread."""
    tid = "01a20b40-8602-74b3-aa57-8f0ef98b6e51"
    sessions = tmp_path / "home" / ".codex" / "sessions" / "2026" / "11" / "24"
    sessions.mkdir(parents=True)
    rollout = (SAMPLES / "codex_rollout_phase1_token_counts.jsonl").read_text()
    (sessions / f"rollout-2026-11-24T01-51-47-{tid}.jsonl").write_text(rollout)
    from shipbench.agents.base import InvocationRequest

    a = CodexAdapter()
    a.invocation(InvocationRequest(binary=Path("/x/codex"), workspace=tmp_path / "ws", home=tmp_path / "home",
                                   prompt="p", model="m", base_url="http://127.0.0.1:1", token="t", session_id=tid))
    events = parse_file(a, "codex_resume_replay.jsonl")
    assert total(events) == Usage(input_tokens=42833 - 21188, output_tokens=95 - 53)
    unbased = parse_file(CodexAdapter(), "codex_resume_replay.jsonl")
    assert total(unbased) == Usage(input_tokens=42833, output_tokens=95)  # what the stream says, raw


def test_codex_baseline_advances_within_one_adapter() -> None:
    a = CodexAdapter()
    a.parse_line('{"type":"thread.started","thread_id":"t1"}')
    first = a.parse_line('{"type":"turn.completed","usage":{"input_tokens":100,"output_tokens":10}}')
    a.parse_line('{"type":"thread.started","thread_id":"t1"}')
    second = a.parse_line('{"type":"turn.completed","usage":{"input_tokens":250,"output_tokens":15}}')
    assert total(first) == Usage(input_tokens=100, output_tokens=10)
    assert total(second) == Usage(input_tokens=150, output_tokens=5)


def test_codex_cached_tokens_items_and_failures() -> None:
    a = CodexAdapter()
    usage = {"input_tokens": 1000, "cached_input_tokens": 600, "cache_write_input_tokens": 50,
             "output_tokens": 80, "reasoning_output_tokens": 30}
    step, terminal = a.parse_line(json.dumps({"type": "turn.completed", "usage": usage}))
    assert step.usage == Usage(input_tokens=350, output_tokens=80, cache_read_tokens=600, cache_write_tokens=50,
                               reasoning_tokens=30)
    assert terminal.kind == "terminal" and not terminal.is_error
    failed_cmd = {"type": "item.completed", "item": {"type": "command_execution", "command": "false",
                                                      "aggregated_output": "", "exit_code": 1, "status": "failed"}}
    assert a.parse_line(json.dumps(failed_cmd))[1].is_error
    spawn = {"type": "item.completed", "item": {"type": "collab_tool_call", "tool": "spawn_agent",
                                                 "prompt": "build models", "status": "completed"}}
    call, result = a.parse_line(json.dumps(spawn))
    assert call.tool == "spawn_agent" and call.delegation and not result.is_error
    patch = {"type": "item.completed", "item": {"type": "file_change", "status": "completed",
                                                 "changes": [{"path": "a.rb", "kind": "add"}]}}
    assert [e.tool for e in a.parse_line(json.dumps(patch))] == ["file_change", "file_change"]
    assert dump(a.parse_line('{"type":"turn.failed","error":{"message":"stream disconnected"}}')) == [
        {"kind": "error", "raw_type": "turn.failed", "text": "stream disconnected"},
        {"kind": "terminal", "raw_type": "turn.failed", "is_error": True, "text": "stream disconnected"},
    ]
    assert a.parse_line('{"type":"error","message":"Reconnecting... 1/5"}')[0].kind == "error"
    assert a.parse_line('{"type":"item.completed","item":{"type":"error","message":"bad"}}')[0].kind == "error"
    assert a.parse_line('{"type":"item.started","item":{"type":"command_execution"}}') == []


CL_SID = "c04cd895-97d6-4c69-b44d-5465ee84dbe0"


def test_claude_sample_stream_exact() -> None:
    events = parse_file(ClaudeAdapter(), "claude_stream_json.jsonl")
    m = "claude-sonnet-4-5"
    assert dump(events) == [
        {"kind": "session", "raw_type": "system/init", "session_id": CL_SID, "model": m},
        {"kind": "tool_call", "raw_type": "assistant", "session_id": CL_SID, "model": m, "tool": "Write",
         "tool_input": '{"file_path":"/tmp/probe/ws-cl/hello.txt","content":"hello from fake llm\\n"}'},
        {"kind": "step", "raw_type": "assistant", "session_id": CL_SID, "model": m, "usage": u(10, 1)},
        {"kind": "tool_result", "raw_type": "user", "session_id": CL_SID,
         "text": "File created successfully at: /tmp/probe/ws-cl/hello.txt (file state is current in your "
                 "context — no need to Read it back)"},
        {"kind": "text", "raw_type": "assistant", "session_id": CL_SID, "model": m,
         "text": "Done: I created the file."},
        {"kind": "step", "raw_type": "assistant", "session_id": CL_SID, "model": m, "usage": u(10, 1)},
        # the result's totals minus what the per-message snapshots already reported
        {"kind": "terminal", "raw_type": "result", "session_id": CL_SID, "usage": u(0, 8),
         "text": "Done: I created the file."},
    ]
    assert total(events) == Usage(input_tokens=20, output_tokens=10)


def test_claude_resumed_run_counts_only_this_invocation() -> None:
    """After --resume, modelUsage is cumulative over the session; model_usage_since_last_result is not."""
    events = parse_file(ClaudeAdapter(), "claude_resume_replay.jsonl")
    result = json.loads((SAMPLES / "claude_resume_replay.jsonl").read_text().splitlines()[-1])
    since = next(iter(result["model_usage_since_last_result"].values()))
    cumulative = next(iter(result["modelUsage"].values()))
    assert cumulative["inputTokens"] > since["inputTokens"]
    assert total(events) == Usage(input_tokens=since["inputTokens"], output_tokens=since["outputTokens"],
                                  cache_read_tokens=since["cacheReadInputTokens"])
    assert [e.kind for e in events].count("terminal") == 1


def _assistant(mid: str, blocks: list[dict[str, Any]], usage: dict[str, int], sid: str = "S") -> str:
    return json.dumps({"type": "assistant", "session_id": sid, "message": {
        "id": mid, "model": "m", "content": blocks, "usage": usage}})


def test_claude_repeated_message_id_counts_usage_once() -> None:
    a = ClaudeAdapter()
    usage = {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 9}
    first = a.parse_line(_assistant("msg_1", [{"type": "text", "text": "Let me delegate."}], usage))
    second = a.parse_line(_assistant("msg_1", [{"type": "tool_use", "name": "Task", "input": {"x": 1}}], usage))
    third = a.parse_line(_assistant("msg_1", [{"type": "tool_use", "name": "Agent", "input": {"y": 2}}], usage))
    assert total(first + second + third) == Usage(input_tokens=5, output_tokens=2, cache_read_tokens=100,
                                                  cache_write_tokens=9)
    assert [e.delegation for e in second + third if e.kind == "tool_call"] == [True, True]
    other_session = a.parse_line(_assistant("msg_1", [], usage, sid="OTHER"))
    assert total(other_session).input_tokens == 5  # bookkeeping is per session


def test_claude_error_result_retry_notice_and_failed_tool() -> None:
    a = ClaudeAdapter()
    retry = {"type": "system", "subtype": "api_retry", "session_id": "S", "attempt": 1, "error": "server_error"}
    assert dump(a.parse_line(json.dumps(retry))) == [
        {"kind": "notice", "raw_type": "system/api_retry", "session_id": "S", "text": "server_error"}]
    tool_err = {"type": "user", "session_id": "S", "message": {"content": [
        {"type": "tool_result", "tool_use_id": "t", "is_error": True, "content": [{"type": "text", "text": "no"}]}]}}
    [res] = a.parse_line(json.dumps(tool_err))
    assert res.kind == "tool_result" and res.is_error
    result = {"type": "result", "subtype": "error_max_turns", "is_error": True, "session_id": "S",
              "usage": {"input_tokens": 7, "output_tokens": 3, "output_tokens_details": {"thinking_tokens": 2}}}
    [term] = a.parse_line(json.dumps(result))
    assert term.kind == "terminal" and term.is_error and term.text == "error_max_turns"
    assert term.usage == Usage(input_tokens=7, output_tokens=3, reasoning_tokens=2)


GM_SID = "dae27e1c-a01e-40a4-ba05-90a3ccd8fb71"


def test_gemini_sample_stream_exact() -> None:
    events = parse_file(GeminiAdapter(), "gemini_stream_json.jsonl")
    assert dump(events) == [
        {"kind": "session", "raw_type": "init", "session_id": GM_SID, "model": "gemini-2.5-flash"},
        {"kind": "tool_call", "raw_type": "tool_use", "tool": "write_file",
         "tool_input": '{"file_path":"/tmp/probe/ws-gm/hello.txt","content":"hello from fake llm\\n"}'},
        {"kind": "tool_result", "raw_type": "tool_result"},
        {"kind": "text", "raw_type": "message", "text": "Done: I created the file."},
        {"kind": "terminal", "raw_type": "result", "usage": u(20, 10)},
    ]
    assert total(events) == Usage(input_tokens=20, output_tokens=10)


def test_gemini_cached_delegation_and_errors() -> None:
    a = GeminiAdapter()
    result = {"type": "result", "status": "error", "error": {"type": "FatalToolExecutionError", "message": "x"},
              "stats": {"input_tokens": 1000, "output_tokens": 50, "cached": 700, "input": 300}}
    [term] = a.parse_line(json.dumps(result))
    assert term.is_error and term.text == "x"
    assert term.usage == Usage(input_tokens=300, output_tokens=50, cache_read_tokens=700)
    no_input = {"type": "result", "status": "success", "stats": {"input_tokens": 1000, "output_tokens": 5,
                                                                  "cached": 400}}
    assert a.parse_line(json.dumps(no_input))[0].usage == Usage(input_tokens=600, output_tokens=5,
                                                                cache_read_tokens=400)
    call = {"type": "tool_use", "tool_name": "invoke_agent", "tool_id": "i", "parameters": {"agent_name": "h"}}
    assert a.parse_line(json.dumps(call))[0].delegation
    failed = {"type": "tool_result", "tool_id": "i", "status": "error", "error": {"message": "denied"}}
    assert dump(a.parse_line(json.dumps(failed))) == [
        {"kind": "tool_result", "raw_type": "tool_result", "is_error": True, "text": "denied"}]
    assert a.parse_line('{"type":"error","severity":"warning","message":"w"}')[0].kind == "notice"
    assert a.parse_line('{"type":"error","severity":"error","message":"e"}')[0].kind == "error"


GARBAGE = [
    "not json at all",
    "{",
    '{"type": "step_finish", "part": ',
    "[1, 2, 3]",
    '"a string"',
    "42",
    "null",
    '{"no_type": true}',
    '{"type": "something_new", "x": 1}',
    '{"type": "assistant", "message": "not an object"}',
    '{"type": "assistant", "message": {"content": "str", "usage": "bad", "id": 5}}',
    '{"type": "step_finish", "part": {"tokens": {"input": "10", "output": null, "cache": []}}}',
    '{"type": "turn.completed", "usage": [1, 2]}',
    '{"type": "item.completed", "item": null}',
    '{"type": "result", "stats": "x", "modelUsage": [1], "model_usage_since_last_result": {"m": 3}}',
    '{"type": "tool_use", "part": {"state": "x"}, "parameters": {"a": NaN}}',
    "\x00\x01\x02 binary",
    "[" * 5000 + "]" * 5000,
]


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_garbage_never_raises(name: str) -> None:
    adapter = get_adapter(name)
    for line in GARBAGE:
        events = adapter.parse_line(line)
        assert isinstance(events, list)
        assert all(isinstance(e, AgentEvent) for e in events)
    assert adapter.parse_line("") == [] and adapter.parse_line("   \n") == []
    [event] = adapter.parse_line("not json at all")
    assert event.kind == "unparsed" and event.text == "not json at all"
    [event] = adapter.parse_line('{"type": "something_new", "x": 1}')
    assert event.kind == "unparsed" and event.raw_type == "something_new"


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_every_prefix_of_every_sample_line_parses(name: str) -> None:
    """Truncated lines (a killed agent mid-write) never raise, whatever the adapter."""
    adapter = get_adapter(name)
    for sample in sorted(SAMPLES.glob("*.jsonl")):
        for line in sample.read_text().splitlines():
            for cut in range(0, len(line), max(len(line) // 40, 1)):
                assert isinstance(adapter.parse_line(line[:cut]), list)


def test_tool_input_is_clipped_with_a_distinguishing_digest() -> None:
    a = ClaudeAdapter()
    blocks = [[{"type": "tool_use", "name": "Write", "input": {"content": "x" * 5000 + tail, "file_path": "f"}}]
              for tail in ("a", "b")]
    inputs = [a.parse_line(_assistant(f"m{i}", b, {}))[0].tool_input for i, b in enumerate(blocks)]
    assert all(i is not None and len(i) <= 2048 for i in inputs)
    assert inputs[0] != inputs[1]
