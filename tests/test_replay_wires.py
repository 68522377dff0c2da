"""The replay server over real loopback HTTP: each wire, streamed and not, parses as the real format, with
usage numbers derived exactly from the request bytes and the output."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from shipbench.replay import WORKSPACE_HEADER, Fault, ReplayServer
from shipbench.replay.trajectory import PhaseScript, Step, Trajectory

CONTENT = 'puts "hi"\n' * 60  # long enough to be split over several deltas
TRAJ = Trajectory(
    name="w",
    phases=[
        PhaseScript(
            match="GO",
            steps=[
                Step(action="write", path="app/x.rb", content=CONTENT),
                Step(action="text", text="All done here, " * 20),
            ],
        )
    ],
)
S = {"type": "string"}
WRITE_ARGS = {"file_path": "/ws/app/x.rb", "content": CONTENT}


def q(n: int) -> int:
    return (n + 3) // 4


async def _post(
    path: str, body: dict[str, Any], headers: dict[str, str], fault: Fault | None
) -> tuple[int, dict[str, str], bytes, bytes, ReplayServer]:
    server = ReplayServer(TRAJ, fault=fault)
    url = await server.start()
    raw = json.dumps(body).encode()
    try:
        async with aiohttp.ClientSession() as session, session.post(url + path, data=raw, headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.read(), raw, server
    finally:
        await server.stop()


def post(
    path: str, body: dict[str, Any], *, workspace: str | None = "/ws", fault: Fault | None = None
) -> tuple[int, dict[str, str], bytes, bytes, ReplayServer]:
    headers = {"Content-Type": "application/json", **({WORKSPACE_HEADER: workspace} if workspace else {})}
    return asyncio.run(_post(path, body, headers, fault))


def parse_sse(data: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event, following the framing rules (blank line ends an event)."""
    events: list[tuple[str | None, str]] = []
    for block in data.decode().replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name, lines = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                lines.append(value)
        events.append((name, "\n".join(lines)))
    return events


def chat_body(stream: bool, *, include_usage: bool = True, tool_results: int = 0) -> dict[str, Any]:
    tools = [
        {"type": "function", "function": {"name": "write", "parameters": {"properties": {"filePath": S, "content": S}}}}
    ]
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "GO"}]
    msgs += [{"role": "tool", "tool_call_id": f"c{i}", "content": "ok"} for i in range(tool_results)]
    body: dict[str, Any] = {"model": "replay-model", "messages": msgs, "tools": tools, "stream": stream}
    if stream and include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def test_openai_chat_json_tool_call_and_usage() -> None:
    status, _, data, raw, server = post("/v1/chat/completions", chat_body(False))
    assert status == 200
    resp = json.loads(data)
    assert resp["object"] == "chat.completion" and resp["model"] == "replay-model"
    choice = resp["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "write"
    assert json.loads(call["function"]["arguments"]) == {"filePath": "/ws/app/x.rb", "content": CONTENT}
    usage = resp["usage"]
    assert usage["prompt_tokens"] == q(len(raw))
    assert usage["completion_tokens"] == q(len(call["function"]["arguments"].encode()))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert server.requests[0]["usage"]["input_tokens"] == usage["prompt_tokens"]
    assert server.requests[0]["tools"] == ["write"] and server.requests[0]["step"] == 0


def test_openai_chat_stream_reassembles_and_reports_usage_last() -> None:
    status, headers, data, raw, _ = post("/v1/chat/completions", chat_body(True))
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = parse_sse(data)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    args = "".join(
        tc["function"].get("arguments", "")
        for c in chunks
        if c["choices"]
        for tc in c["choices"][0]["delta"].get("tool_calls", [])
    )
    assert len([c for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]) > 2
    assert json.loads(args)["content"] == CONTENT
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    usage_chunks = [c for c in chunks if c.get("usage")]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1]["choices"] == []
    assert usage_chunks[0]["usage"]["prompt_tokens"] == q(len(raw))
    assert usage_chunks[0]["usage"]["completion_tokens"] == q(len(args.encode()))


def test_openai_chat_stream_without_include_usage_has_no_usage_and_text_after_tool_result() -> None:
    _, _, data, _, _ = post("/v1/chat/completions", chat_body(True, include_usage=False, tool_results=1))
    chunks = [json.loads(d) for _, d in parse_sse(data)[:-1]]
    assert not any("usage" in c for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "All done here, " * 20
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def responses_body(stream: bool, tool_results: int = 0) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "GO"}]}
    ]
    for i in range(tool_results):
        items += [
            {"type": "function_call", "call_id": f"c{i}", "name": "exec_command", "arguments": "{}"},
            {"type": "function_call_output", "call_id": f"c{i}", "output": "ok"},
        ]
    tools = [
        {"type": "function", "name": "exec_command", "parameters": {"properties": {"cmd": S}, "required": ["cmd"]}}
    ]
    return {"model": "gpt-replay", "input": items, "tools": tools, "stream": stream}


def test_responses_stream_event_sequence_and_usage() -> None:
    _, _, data, raw, _ = post("/v1/responses", responses_body(True))
    events = parse_sse(data)
    payloads = [json.loads(d) for _, d in events]
    assert all(name == p["type"] for (name, _), p in zip(events, payloads, strict=True))
    kinds = [p["type"] for p in payloads]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    args = "".join(p["delta"] for p in payloads if p["type"] == "response.function_call_arguments.delta")
    assert args == payloads[-3]["arguments"] == payloads[-2]["item"]["arguments"]
    assert "<<'SHIPBENCH_EOF'" in json.loads(args)["cmd"]
    done = payloads[-1]["response"]
    assert done["status"] == "completed" and done["model"] == "gpt-replay"
    assert done["usage"]["input_tokens"] == q(len(raw)) and done["usage"]["output_tokens"] == q(len(args.encode()))
    assert done["usage"]["input_tokens_details"]["cached_tokens"] == 0


def test_responses_text_stream_and_json() -> None:
    _, _, data, _, _ = post("/v1/responses", responses_body(True, tool_results=1))
    payloads = [json.loads(d) for _, d in parse_sse(data)]
    text = "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta")
    assert text == "All done here, " * 20
    assert payloads[-2]["item"]["content"][0] == {"type": "output_text", "text": text, "annotations": []}
    _, _, data, raw, _ = post("/v1/responses", responses_body(False, tool_results=1))
    resp = json.loads(data)
    assert resp["object"] == "response" and resp["output"][0]["type"] == "message"
    assert resp["usage"]["input_tokens"] == q(len(raw))


def anthropic_body(stream: bool) -> dict[str, Any]:
    tools = [{"name": "Write", "input_schema": {"properties": {"file_path": S, "content": S}}}]
    return {
        "model": "claude-replay",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "GO"}],
        "tools": tools,
        "stream": stream,
    }


def test_anthropic_stream_events_and_cache_split() -> None:
    _, _, data, raw, server = post("/v1/messages?beta=true", anthropic_body(True))
    events = parse_sse(data)
    payloads = [json.loads(d) for _, d in events]
    assert all(name == p["type"] for (name, _), p in zip(events, payloads, strict=True))
    kinds = [p["type"] for p in payloads]
    assert kinds[0] == "message_start" and kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = payloads[0]["message"]
    assert start["model"] == "claude-replay"
    prompt = q(len(raw))
    assert start["usage"]["cache_read_input_tokens"] == prompt // 4
    assert start["usage"]["input_tokens"] + start["usage"]["cache_read_input_tokens"] == prompt
    assert payloads[1]["content_block"]["type"] == "tool_use" and payloads[1]["content_block"]["name"] == "Write"
    partial = "".join(p["delta"]["partial_json"] for p in payloads if p["type"] == "content_block_delta")
    assert json.loads(partial) == WRITE_ARGS
    assert payloads[-2]["delta"]["stop_reason"] == "tool_use"
    assert payloads[-2]["usage"]["output_tokens"] == q(len(partial.encode()))
    assert server.requests[0]["query"] == "beta=true"
    assert server.requests[0]["usage"] == {
        "input_tokens": prompt - prompt // 4,
        "output_tokens": q(len(partial.encode())),
        "cache_read_tokens": prompt // 4,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }


def test_anthropic_json() -> None:
    _, _, data, raw, _ = post("/v1/messages", anthropic_body(False))
    resp = json.loads(data)
    assert resp["type"] == "message" and resp["stop_reason"] == "tool_use"
    assert resp["content"][0]["type"] == "tool_use" and resp["content"][0]["input"] == WRITE_ARGS
    assert resp["content"][0]["id"].startswith("toolu_")
    assert resp["usage"]["input_tokens"] + resp["usage"]["cache_read_input_tokens"] == q(len(raw))


def gemini_body(tool_results: int = 0) -> dict[str, Any]:
    contents: list[dict[str, Any]] = [{"role": "user", "parts": [{"text": "GO"}]}]
    for _ in range(tool_results):
        contents += [
            {"role": "model", "parts": [{"functionCall": {"name": "write_file", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "write_file", "response": {}}}]},
        ]
    decl = {"name": "write_file", "parametersJsonSchema": {"properties": {"file_path": S, "content": S}}}
    return {"contents": contents, "tools": [{"functionDeclarations": [decl]}]}


def test_gemini_stream_model_from_url_and_cumulative_usage() -> None:
    _, _, data, raw, server = post("/v1beta/models/gemini-9-pro:streamGenerateContent?alt=sse", gemini_body(1))
    chunks = [json.loads(d) for _, d in parse_sse(data)]
    assert len(chunks) > 1 and all(c["modelVersion"] == "gemini-9-pro" for c in chunks)
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "All done here, " * 20
    counts = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert counts == sorted(counts) and counts[-1] == q(len(text.encode()))
    assert chunks[-1]["usageMetadata"]["promptTokenCount"] == q(len(raw))
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert server.requests[0]["model"] == "gemini-9-pro" and server.requests[0]["stream"] is True


def test_gemini_json_function_call() -> None:
    _, _, data, raw, _ = post("/v1beta/models/gemini-2.5-flash:generateContent", gemini_body())
    resp = json.loads(data)
    part = resp["candidates"][0]["content"]["parts"][0]
    assert part["functionCall"] == {"name": "write_file", "args": WRITE_ARGS}
    assert resp["usageMetadata"]["promptTokenCount"] == q(len(raw))
    assert resp["usageMetadata"]["candidatesTokenCount"] == q(len(json.dumps(WRITE_ARGS, ensure_ascii=False).encode()))


def test_without_workspace_header_paths_stay_relative() -> None:
    _, _, data, _, server = post("/v1/messages", anthropic_body(False), workspace=None)
    assert json.loads(data)["content"][0]["input"]["file_path"] == "app/x.rb"
    assert server.requests[0]["workspace"] is None


def test_models_listing_and_unknown_route() -> None:
    async def run() -> tuple[int, dict[str, Any], int, list[dict[str, Any]]]:
        server = ReplayServer(TRAJ)
        url = await server.start()
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(url + "/v1/models") as r1:
                    models = await r1.json()
                async with s.post(url + "/v2/nothing", data=b"{}") as r2:
                    return r1.status, models, r2.status, server.requests
        finally:
            await server.stop()

    status, models, missing, requests = asyncio.run(run())
    assert status == 200 and models["data"][0]["id"] == "replay"
    assert missing == 404 and requests[-1]["path"] == "/v2/nothing"
