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
