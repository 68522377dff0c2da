"""A scripted provider edge for the proxy tests: a real aiohttp server speaking the four wire formats.

Not a test module (it holds no tests): the fake upstream, canonical responses with fixed usage
numbers per wire, and helpers shared by tests/test_proxy*.py and benchmarks/bench_proxy.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

REAL_KEY = "sk-or-v1-REALKEY-0123456789abcdef-must-never-leak"


@dataclass
class Scripted:
    """One scripted upstream answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # JSON body (non-stream) when events is None
    events: list[bytes] | None = None  # raw SSE frames, each written as its own chunk
    chunk_delay: float = 0.0
    hang_s: float = 0.0  # sleep before answering
    break_after: int | None = None  # abort the connection after this many frames
    gate: asyncio.Event | None = None  # after the first frame, wait for this before the rest


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"{head}data: {data}\n\n".encode()


# --- canonical answers, with the usage numbers the tests assert -------------------------------------

CHAT_MODEL = "anthropic/claude-sonnet-4.5"
CHAT_USAGE = {"prompt_tokens": 1200, "completion_tokens": 85, "total_tokens": 1285,
              "prompt_tokens_details": {"cached_tokens": 1000},
              "completion_tokens_details": {"reasoning_tokens": 20}, "cost": 0.0123}
RESP_MODEL = "gpt-5-codex"
RESP_USAGE = {"input_tokens": 2000, "input_tokens_details": {"cached_tokens": 1500}, "output_tokens": 300,
              "output_tokens_details": {"reasoning_tokens": 120}, "total_tokens": 2300}
ANTH_MODEL = "claude-sonnet-4-5-20250929"
ANTH_START_USAGE = {"input_tokens": 12, "cache_creation_input_tokens": 400, "cache_read_input_tokens": 3000,
                    "output_tokens": 1}
ANTH_OUTPUT = 77
GEM_MODEL = "gemini-2.5-flash"
GEM_USAGE = {"promptTokenCount": 900, "candidatesTokenCount": 60, "cachedContentTokenCount": 400,
             "thoughtsTokenCount": 30, "totalTokenCount": 990}

# what the proxy must record for each wire (normalised, see shipbench.proxy.usage)
EXPECTED = {
    "openai_chat": dict(input_tokens=200, output_tokens=85, cache_read_tokens=1000, cache_write_tokens=0,
                        reasoning_tokens=20),
    "openai_responses": dict(input_tokens=500, output_tokens=300, cache_read_tokens=1500, cache_write_tokens=0,
                             reasoning_tokens=120),
    "anthropic_messages": dict(input_tokens=12, output_tokens=77, cache_read_tokens=3000, cache_write_tokens=400,
                               reasoning_tokens=0),
    "gemini": dict(input_tokens=500, output_tokens=90, cache_read_tokens=400, cache_write_tokens=0,
                   reasoning_tokens=30),
}
SERVED = {"openai_chat": CHAT_MODEL, "openai_responses": RESP_MODEL, "anthropic_messages": ANTH_MODEL,
          "gemini": GEM_MODEL}


def chat_stream() -> list[bytes]:
    base = {"id": "gen-1", "object": "chat.completion.chunk", "created": 1, "model": CHAT_MODEL,
            "provider": "Anthropic"}
    return [
        sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        sse({**base, "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        sse({**base, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}),
        b": OPENROUTER PROCESSING\n\n",
        sse({**base, "choices": [], "usage": CHAT_USAGE}),
        sse("[DONE]"),
    ]


def chat_json() -> dict[str, Any]:
    return {"id": "gen-1", "object": "chat.completion", "model": CHAT_MODEL, "provider": "Anthropic",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
            "usage": CHAT_USAGE}


def _response_obj(status: str, usage: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "status": status, "model": RESP_MODEL, "output": [],
            "usage": usage}


def responses_stream() -> list[bytes]:
    item = {"type": "message", "id": "msg_1", "role": "assistant", "content": []}
    return [
        sse({"type": "response.created", "response": _response_obj("in_progress", None)}, "response.created"),
        sse({"type": "response.output_item.added", "output_index": 0, "item": item}, "response.output_item.added"),
        sse({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Hello"},
            "response.output_text.delta"),
        sse({"type": "response.output_item.done", "output_index": 0, "item": item}, "response.output_item.done"),
        sse({"type": "response.completed", "response": _response_obj("completed", RESP_USAGE)},
            "response.completed"),
    ]


def responses_json() -> dict[str, Any]:
    return _response_obj("completed", RESP_USAGE)


def anthropic_stream() -> list[bytes]:
    msg: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant", "model": ANTH_MODEL, "content": [],
           "stop_reason": None, "usage": ANTH_START_USAGE}
    return [
        sse({"type": "message_start", "message": msg}, "message_start"),
        sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start"),
        sse({"type": "ping"}, "ping"),
        sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
            "content_block_delta"),
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": ANTH_OUTPUT}},
            "message_delta"),
        sse({"type": "message_stop"}, "message_stop"),
    ]


def anthropic_json() -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": ANTH_MODEL,
            "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn",
            "usage": {**ANTH_START_USAGE, "output_tokens": ANTH_OUTPUT}}


def _gem_chunk(text: str, usage: dict[str, int], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish  # Gemini sets it on the last chunk of an answer
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": GEM_MODEL}


def gemini_stream() -> list[bytes]:
    first = {"promptTokenCount": 900, "candidatesTokenCount": 5, "cachedContentTokenCount": 400,
             "totalTokenCount": 905}
    return [sse(_gem_chunk("Hel", first)).replace(b"\n\n", b"\r\n\r\n"), sse(_gem_chunk("lo", GEM_USAGE, "STOP"))]


def gemini_json() -> dict[str, Any]:
    return _gem_chunk("Hello", GEM_USAGE, "STOP")


STREAMS: dict[str, Callable[[], list[bytes]]] = {
    "openai_chat": chat_stream, "openai_responses": responses_stream, "anthropic_messages": anthropic_stream,
    "gemini": gemini_stream}
BODIES: dict[str, Callable[[], dict[str, Any]]] = {
    "openai_chat": chat_json, "openai_responses": responses_json, "anthropic_messages": anthropic_json,
    "gemini": gemini_json}


def wire_of(path: str) -> str:
    if path.startswith("/v1beta/"):
        return "gemini"
    if path.startswith("/v1/messages"):
        return "anthropic_messages"
    if path.startswith("/v1/responses"):
        return "openai_responses"
    return "openai_chat"


def default_answer(path: str, body: bytes) -> Scripted:
    wire = wire_of(path)
    if path == "/v1/models":
        return Scripted(body={"object": "list", "data": [{"id": CHAT_MODEL, "object": "model"}]})
    stream = ":streamGenerateContent" in path
    if wire != "gemini" and body:
        stream = json.loads(body).get("stream") is True
    if stream:
        return Scripted(events=STREAMS[wire]())
    return Scripted(body=BODIES[wire]())


class FakeUpstream:
    """Answers from `queue` first (one Scripted per request), then the canonical answer per wire."""

    def __init__(self) -> None:
        self.queue: list[Scripted] = []
        self.requests: list[Received] = []
        self.active = 0
        self.max_active = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Received(request.method, request.path, dict(request.query), dict(request.headers), body))
        script = self.queue.pop(0) if self.queue else default_answer(request.path, body)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await self._answer(request, script)
        finally:
            self.active -= 1

    async def _answer(self, request: web.Request, script: Scripted) -> web.StreamResponse:
        if script.hang_s:
            await asyncio.sleep(script.hang_s)
        if script.events is None:
            return web.json_response(script.body if script.body is not None else {}, status=script.status,
                                     headers=script.headers)
        resp = web.StreamResponse(status=script.status, headers={"Content-Type": "text/event-stream",
                                                                 "Cache-Control": "no-cache", **script.headers})
        await resp.prepare(request)
        for i, frame in enumerate(script.events):
            if script.break_after is not None and i >= script.break_after:
                assert request.transport is not None
                request.transport.abort()
                return resp
            await resp.write(frame)
            if i == 0 and script.gate is not None:
                await script.gate.wait()
            if script.chunk_delay:
                await asyncio.sleep(script.chunk_delay)
        await resp.write_eof()
        return resp


# --- requests as each agent would send them ------------------------------------------------------

def agent_request(wire: str, stream: bool, token: str) -> tuple[str, dict[str, str], bytes]:
    """(path with query, headers, body) the way the real CLIs send them, authenticated with `token`."""
    msgs = [{"role": "user", "content": "hi"}]
    if wire == "openai_chat":
        return ("/v1/chat/completions", {"Authorization": f"Bearer {token}"},
                json.dumps({"model": CHAT_MODEL, "messages": msgs, "stream": stream}).encode())
    if wire == "openai_responses":
        return ("/v1/responses", {"Authorization": f"Bearer {token}"},
                json.dumps({"model": RESP_MODEL, "input": msgs, "stream": stream}).encode())
    if wire == "anthropic_messages":
        headers = {"x-api-key": token, "anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219"}
        return ("/v1/messages?beta=true", headers,
                json.dumps({"model": "claude-sonnet-4-5", "messages": msgs, "max_tokens": 100,
                            "stream": stream}).encode())
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return (f"/v1beta/models/{GEM_MODEL}:{method}", {"x-goog-api-key": token},
            json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode())
