"""Scripted misbehaviour of the replay upstream: HTTP status storms with Retry-After, hangs, loops, slow and
garbage streams, observed over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from shipbench.replay import Fault, ReplayServer
from shipbench.replay.frames import prompt_bytes
from shipbench.replay.trajectory import PhaseScript, Step, Trajectory

TRAJ = Trajectory(
    name="f",
    phases=[
        PhaseScript(
            match="GO", steps=[Step(action="shell", command="echo one"), Step(action="text", text="done " * 30)]
        )
    ],
)
BASH = {"type": "function", "function": {"name": "bash", "parameters": {"properties": {"command": {"type": "string"}}}}}


def chat(tool_results: int = 0, stream: bool = False) -> bytes:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "GO"}]
    msgs += [{"role": "tool", "tool_call_id": f"c{i}", "content": "ok"} for i in range(tool_results)]
    return json.dumps({"model": "m", "messages": msgs, "tools": [BASH], "stream": stream}).encode()


async def with_server(fault: Fault, fn: Any) -> Any:
    server = ReplayServer(TRAJ, fault=fault)
    url = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            return await fn(session, url, server)
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("/v1/chat/completions", lambda b: b["error"]["type"] == "rate_limit_exceeded"),
        (
            "/v1/messages",
            lambda b: b == {"type": "error", "error": {"type": "rate_limit_error", "message": b["error"]["message"]}},
        ),
        ("/v1beta/models/g:generateContent", lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED"),
    ],
)
def test_status_fault_times_with_retry_after(path: str, check: Any) -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> list[tuple[int, str | None, Any]]:
        out = []
        for _ in range(3):
            async with session.post(url + path, data=chat()) as resp:
                out.append((resp.status, resp.headers.get("Retry-After"), await resp.json(content_type=None)))
        return out

    results = asyncio.run(with_server(Fault(kind="status", status=429, times=2, retry_after=1.5), run))
    assert [r[0] for r in results] == [429, 429, 200]
    assert [r[1] for r in results] == ["1.5", "1.5", None]
    assert check(results[0][2])


def test_status_500_without_retry_after_is_recorded() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> tuple[int, list[dict[str, Any]]]:
        async with session.post(url + "/v1/chat/completions", data=chat()) as resp:
            return resp.status, server.requests

    status, requests = asyncio.run(with_server(Fault(kind="status"), run))
    assert status == 500 and requests[0]["fault"] == "status"


def test_hang_never_answers_and_stop_releases_it() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> list[dict[str, Any]]:
        with pytest.raises(asyncio.TimeoutError):
            timeout = aiohttp.ClientTimeout(total=0.5)
            async with session.post(url + "/v1/chat/completions", data=chat(), timeout=timeout) as resp:
                await resp.read()
        return server.requests

    started = time.monotonic()
    requests = asyncio.run(with_server(Fault(kind="hang"), run))
    assert requests[0]["fault"] == "hang"
    assert time.monotonic() - started < 5


def test_loop_answers_the_same_tool_call_forever() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> list[Any]:
        calls = []
        for n in range(4):
            async with session.post(url + "/v1/chat/completions", data=chat(tool_results=n)) as resp:
                call = (await resp.json())["choices"][0]["message"]["tool_calls"][0]["function"]
                calls.append((call["name"], call["arguments"]))
        return calls

    calls = asyncio.run(with_server(Fault(kind="loop"), run))
    assert calls == [("bash", '{"command": "echo one"}')] * 4


def test_slow_delays_each_chunk() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> tuple[list[float], bytes]:
        stamps, data = [], b""
        async with session.post(url + "/v1/chat/completions", data=chat(tool_results=1, stream=True)) as resp:
            async for chunk in resp.content.iter_any():
                stamps.append(time.monotonic())
                data += chunk
        return stamps, data

    stamps, data = asyncio.run(with_server(Fault(kind="slow", delay_s=0.1), run))
    assert data.endswith(b"data: [DONE]\n\n")
    assert len(stamps) >= 3 and stamps[-1] - stamps[0] >= 0.1 * (len(stamps) - 1) * 0.8


def test_garbage_once_then_valid() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> list[bytes]:
        out = []
        for stream in (True, False, False):
            async with session.post(url + "/v1/chat/completions", data=chat(stream=stream)) as resp:
                out.append(await resp.read())
        return out

    first, second, third = asyncio.run(with_server(Fault(kind="garbage", times=2), run))
    for block in first.split(b"\n\n"):
        payload = block.partition(b"data:")[2].strip()
        if payload:
            with pytest.raises(ValueError):
                json.loads(payload)
    with pytest.raises(ValueError):
        json.loads(second)
    assert json.loads(third)["choices"][0]["finish_reason"] == "tool_calls"


# --- local-server personas and their failure modes (what preflight and metering tests impersonate) ---


async def with_persona(fn: Any, **kw: Any) -> Any:
    server = ReplayServer(TRAJ, **kw)
    url = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            return await fn(session, url, server)
    finally:
        await server.stop()


def chat_usage_body(stream: bool) -> bytes:
    body = json.loads(chat(tool_results=1, stream=stream))
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def test_no_stream_usage_drops_usage_from_streams_only() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> tuple[str, dict[str, Any]]:
        async with session.post(url + "/v1/chat/completions", data=chat_usage_body(True)) as resp:
            streamed = await resp.text()
        async with session.post(url + "/v1/chat/completions", data=chat_usage_body(False)) as resp:
            plain = await resp.json()
        return streamed, plain

    streamed, plain = asyncio.run(with_persona(run, fault=Fault(kind="no_stream_usage")))
    assert '"usage"' not in streamed and streamed.endswith("data: [DONE]\n\n")
    assert plain["usage"]["prompt_tokens"] > 0


def test_empty_stream_is_200_event_stream_with_no_body() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> tuple[int, str, bytes, int]:
        async with session.post(url + "/v1/chat/completions", data=chat(stream=True)) as resp:
            status, ctype, body = resp.status, resp.headers["Content-Type"], await resp.read()
        async with session.post(url + "/v1/chat/completions", data=chat()) as resp:
            return status, ctype, body, resp.status

    status, ctype, body, plain = asyncio.run(with_persona(run, fault=Fault(kind="empty_stream")))
    assert (status, ctype, body, plain) == (200, "text/event-stream", b"", 200)


@pytest.mark.parametrize(
    ("persona", "fault", "stream_status", "check"),
    [
        (None, Fault(kind="context"), 200, lambda b: b["error"]["type"] == "exceed_context_size_error"),
        ("llama.cpp", None, 200, lambda b: b["error"]["n_ctx"] == 16 and b["error"]["n_prompt_tokens"] > 16),
        ("llama-cpp-python", None, 200, lambda b: b["error"]["code"] == "context_length_exceeded"),
        ("vllm", None, 400, lambda b: b["message"].startswith("This model's maximum context length is 16 tokens")),
    ],
)
def test_context_overflow_is_refused_like_the_server(
    persona: str | None, fault: Fault | None, stream_status: int, check: Any
) -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> tuple[int, Any, int, bytes]:
        async with session.post(url + "/v1/chat/completions", data=chat()) as resp:
            status, body = resp.status, await resp.json(content_type=None)
        async with session.post(url + "/v1/chat/completions", data=chat(stream=True)) as resp:
            raw = await resp.read()
            return status, body, resp.status, raw if resp.status == 200 else b""

    status, body, s_status, s_body = asyncio.run(with_persona(run, persona=persona, fault=fault, n_ctx=16))
    assert status == 400 and check(body)
    assert (s_status, s_body) == (stream_status, b"")


def test_ollama_truncates_silently_and_small_prompts_pass() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> tuple[int, dict[str, int]]:
        async with session.post(url + "/v1/chat/completions", data=chat()) as resp:
            return resp.status, dict(server.loaded)

    assert asyncio.run(with_persona(run, persona="ollama", n_ctx=64)) == (200, {"m": 64})
    ok = asyncio.run(with_persona(run, persona="llama.cpp", n_ctx=100_000))
    assert ok[0] == 200


def test_tools_as_text_sends_the_call_in_the_content() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> dict[str, Any]:
        async with session.post(url + "/v1/chat/completions", data=chat()) as resp:
            return dict((await resp.json())["choices"][0])

    choice = asyncio.run(with_persona(run, fault=Fault(kind="tools_as_text")))
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] == "stop"
    text = choice["message"]["content"]
    assert text.startswith("<tool_call>") and text.endswith("</tool_call>")
    assert json.loads(text.removeprefix("<tool_call>").removesuffix("</tool_call>")) == {
        "name": "bash",
        "arguments": {"command": "echo one"},
    }


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        (None, {"error": {"message": "replay: no route for /v1/responses"}}),
        ("llama.cpp", {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}),
        ("vllm", {"detail": "Not Found"}),
        ("ollama", "404 page not found"),
    ],
)
def test_disabled_wire_answers_404_like_the_server(persona: str | None, expected: Any) -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> tuple[int, Any, int, Any]:
        async with session.post(url + "/v1/responses", json={"model": "m", "input": "hi"}) as resp:
            text = await resp.text()
            body = json.loads(text) if resp.content_type == "application/json" else text
            status = resp.status
        async with session.post(url + "/v1/chat/completions", data=chat()) as resp:
            return status, body, resp.status, server.requests[0].get("fault")

    status, body, chat_status, fault = asyncio.run(
        with_persona(run, persona=persona, disabled_wires={"openai_responses"})
    )
    assert (status, body, chat_status, fault) == (404, expected, 200, "disabled_wire")


def test_unknown_disabled_wire_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown wire 'grpc'"):
        ReplayServer(TRAJ, disabled_wires={"grpc"})


def test_served_models_and_persona_model_lists() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> Any:
        async with session.get(url + "/v1/models") as resp:
            return await resp.json()

    plain = asyncio.run(with_persona(run, served_models=["a", "b"]))
    assert [m["id"] for m in plain["data"]] == ["a", "b"]
    llama = asyncio.run(with_persona(run, persona="llama.cpp", served_models=["a"], native_ctx=4096))
    assert llama["data"][0]["meta"]["n_ctx_train"] == 4096
    vllm = asyncio.run(with_persona(run, persona="vllm", served_models=["a"], n_ctx=2048))
    assert vllm["data"][0]["max_model_len"] == 2048
    ollama = asyncio.run(with_persona(run, persona="ollama", served_models=["qwen3"]))
    assert [m["id"] for m in ollama["data"]] == ["qwen3:latest"]


def test_forced_tool_choice_outside_the_script_gets_a_call() -> None:
    tool = {"type": "function", "function": {"name": "record", "parameters": {
        "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}}
    bodies = {
        "/v1/chat/completions": {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [tool],
                                 "tool_choice": {"type": "function", "function": {"name": "record"}}},
        "/v1/messages": {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}],
                         "tools": [{"name": "record", "input_schema": tool["function"]["parameters"]}],  # type: ignore[index]
                         "tool_choice": {"type": "tool", "name": "record"}},
    }

    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> list[Any]:
        out = []
        for path, body in bodies.items():
            async with session.post(url + path, json=body) as resp:
                out.append(await resp.json())
        async with session.post(url + "/v1/chat/completions", json={**bodies["/v1/chat/completions"],
                                                                    "tool_choice": "auto"}) as resp:
            out.append(await resp.json())
        return out

    chat_answer, anthropic_answer, auto = asyncio.run(with_persona(run))
    call = chat_answer["choices"][0]["message"]["tool_calls"][0]["function"]
    assert (call["name"], json.loads(call["arguments"])) == ("record", {"answer": "replay"})
    assert anthropic_answer["content"][0]["type"] == "tool_use" and anthropic_answer["content"][0]["name"] == "record"
    assert "tool_calls" not in auto["choices"][0]["message"]  # not forced: the unscripted text, as before


def test_persona_metadata_endpoints() -> None:
    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> dict[str, Any]:
        out = {}
        for path in ("/health", "/props"):
            async with session.get(url + path) as resp:
                out[path] = await resp.json()
        return out

    got = asyncio.run(with_persona(run, persona="llama.cpp", n_ctx=8192, served_models=["m"]))
    assert got["/health"] == {"status": "ok"}
    assert got["/props"]["default_generation_settings"]["n_ctx"] == 8192
    assert got["/props"]["model_path"].endswith("-Q4_K_M.gguf") and got["/props"]["build_info"]

    async def ollama(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> list[Any]:
        out = []
        async with session.get(url + "/api/tags") as resp:
            out.append(await resp.json())
        async with session.post(url + "/api/show", json={"model": "m"}) as resp:
            out.append(await resp.json())
        async with session.post(url + "/api/show", json={"model": "nope"}) as resp:
            out.append(resp.status)
        async with session.get(url + "/api/ps") as resp:
            out.append(await resp.json())
        return out

    tags, show, missing, ps = asyncio.run(with_persona(ollama, persona="ollama", served_models=["m"], native_ctx=40960))
    assert tags["models"][0]["name"] == "m:latest" and tags["models"][0]["details"]["quantization_level"] == "Q4_K_M"
    assert show["model_info"]["qwen2.context_length"] == 40960 and "tools" in show["capabilities"]
    assert (missing, ps) == (404, {"models": []})


@pytest.mark.parametrize(
    ("persona", "path", "field"),
    [("llama.cpp", "/tokenize", "content"), ("llama-cpp-python", "/extras/tokenize", "input"),
     ("vllm", "/tokenize", "prompt")],
)
def test_tokenize_counts_like_the_replay_usage(persona: str, path: str, field: str) -> None:
    """The metering check: tokenizing the conversation of a call gives its non-streamed usage (a persona counts
    the rendered conversation, not the request's other fields, like a real server)."""
    body = chat_usage_body(False)
    conversation = prompt_bytes(json.loads(body))

    async def run(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> tuple[int, int]:
        async with session.post(url + "/v1/chat/completions", data=body) as resp:
            usage = (await resp.json())["usage"]["prompt_tokens"]
        async with session.post(url + path, json={field: conversation.decode(), "model": "m"}) as resp:
            answer = await resp.json()
        return usage, answer["count"] if persona == "vllm" else len(answer["tokens"])

    usage, counted = asyncio.run(with_persona(run, persona=persona))
    assert usage == counted
