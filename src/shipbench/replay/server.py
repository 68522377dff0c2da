"""The `replay` upstream: an aiohttp server on 127.0.0.1 that answers the four provider wires from a trajectory.

Invariants: stateless per request (see script.py), apart from the fault budget (`Fault.times` counts down
for the `status` and `garbage` kinds; `hang`, `loop` and `slow` apply to every request); every request,
faulted or not, is appended to `requests` before it is answered; it never reads or stores credentials.
Set SHIPBENCH_REPLAY_LOG=path to append each raw request body as a JSON line (for inspecting real shapes).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from shipbench.replay.conversation import Wire, infer_workdir, parse_request
from shipbench.replay.frames import TokenCounts, ceil_quarter, count_tokens, error_body
from shipbench.replay.script import Reply, decide
from shipbench.replay.trajectory import Trajectory
from shipbench.replay.wire_anthropic_gemini import anthropic_json, anthropic_stream, gemini_json, gemini_stream
from shipbench.replay.wire_openai import chat_json, chat_stream, responses_json, responses_stream

WORKSPACE_HEADER = "X-Shipbench-Workspace"
LOG_ENV = "SHIPBENCH_REPLAY_LOG"
GARBAGE_FRAMES = (b'data: {"choices": [\n\n', b"event: \x00\x01\ndata: not json at all\n\n", b"data: }{\n")


class Fault(BaseModel):
    """Scripted misbehaviour for fault tests."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["status", "hang", "loop", "slow", "garbage"]
    status: int = 500
    times: int = 1
    retry_after: float | None = None
    delay_s: float = 0


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ReplayServer:
    def __init__(self, trajectory: Trajectory, *, fault: Fault | None = None) -> None:
        self.trajectory = trajectory
        self.fault = fault
        self.requests: list[dict[str, Any]] = []
        self._fault_left = fault.times if fault else 0
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.base_url = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._wire("openai_chat"))
        app.router.add_post("/v1/responses", self._wire("openai_responses"))
        app.router.add_post("/v1/messages", self._wire("anthropic"))
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_post("/v1beta/models/{target}", self._wire("gemini"))
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _wire(self, wire: Wire) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(wire, request)

        return handle

    async def _handle(self, wire: Wire, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        _log_body(request.path_qs, body)
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "wire": wire,
            "body_bytes": len(raw),
        }
        self.requests.append(record)
        if not isinstance(body, dict):
            return web.json_response(error_body(wire, 400, "request body is not a JSON object"), status=400)
        model, stream = self._model_and_stream(wire, request, body)
        record.update(model=model, stream=stream)
        faulted = await self._apply_fault(wire, stream, request, record)
        if faulted is not None:
            return faulted
        conv = parse_request(wire, body, model=model, stream=stream)
        workspace = request.headers.get(WORKSPACE_HEADER) or infer_workdir(conv)
        reply = decide(self.trajectory, conv, workspace=workspace, loop=self._kind() == "loop")
        tokens = count_tokens(wire, raw, reply.output_text)
        record.update(
            tools=[t.name for t in conv.tools],
            workspace=workspace,
            phase=reply.phase,
            step=reply.step,
            reply=_reply_summary(reply),
            usage=tokens.normalised(),
            reported_prompt_tokens=tokens.prompt,
        )
        if not stream:
            await self._pause()
            return web.json_response(_render_json(wire, reply, model, tokens))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self._send_frames(request, _render_stream(wire, reply, model, tokens, include_usage))

    @staticmethod
    def _model_and_stream(wire: Wire, request: web.Request, body: dict[str, Any]) -> tuple[str, bool]:
        if wire == "gemini":
            model, _, action = request.match_info["target"].partition(":")
            return model, action == "streamGenerateContent"
        return str(body.get("model") or ""), body.get("stream") is True

    def _kind(self) -> str | None:
        return self.fault.kind if self.fault else None

    async def _apply_fault(
        self, wire: Wire, stream: bool, request: web.Request, record: dict[str, Any]
    ) -> web.StreamResponse | None:
        fault = self.fault
        if fault is None or fault.kind in ("loop", "slow"):
            return None
        if fault.kind == "hang":
            record["fault"] = "hang"
            await self._stopping.wait()
            return web.json_response(error_body(wire, 503, "replay server stopped"), status=503)
        if self._fault_left <= 0:
            return None
        self._fault_left -= 1
        record["fault"] = fault.kind
        if fault.kind == "status":
            headers = {"Retry-After": _retry_after(fault.retry_after)} if fault.retry_after is not None else {}
            message = f"replay: scripted HTTP {fault.status}"
            return web.json_response(error_body(wire, fault.status, message), status=fault.status, headers=headers)
        if stream:
            return await self._send_frames(request, list(GARBAGE_FRAMES))
        return web.Response(body=b'{"id": "garbage", "choices": [', content_type="application/json")

    async def _pause(self) -> None:
        if self.fault is not None and self.fault.kind == "slow" and self.fault.delay_s > 0:
            await asyncio.sleep(self.fault.delay_s)

    async def _send_frames(self, request: web.Request, frames: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for frame in frames:
            await self._pause()
            await response.write(frame)
        await response.write_eof()
        return response

    async def _count_tokens(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append({"method": "POST", "path": request.path, "wire": "anthropic", "body_bytes": len(raw)})
        return web.json_response({"input_tokens": ceil_quarter(len(raw))})

    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append({"method": "GET", "path": request.path, "wire": "openai_chat"})
        data = [{"id": "replay", "object": "model", "created": 0, "owned_by": "shipbench"}]
        return web.json_response({"object": "list", "data": data})

    async def _unknown(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests.append({"method": request.method, "path": request.path, "wire": None})
        return web.json_response({"error": {"message": f"replay: no route for {request.path}"}}, status=404)


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _reply_summary(reply: Reply) -> dict[str, Any]:
    if reply.tool_call:
        return {"kind": "tool", "tool": reply.tool_call.name, "arguments": reply.tool_call.arguments}
    return {"kind": "text", "text": reply.text}


def _render_json(wire: Wire, reply: Reply, model: str, tokens: TokenCounts) -> dict[str, Any]:
    render = {
        "openai_chat": chat_json,
        "openai_responses": responses_json,
        "anthropic": anthropic_json,
        "gemini": gemini_json,
    }[wire]
    return render(reply, model, tokens)


def _render_stream(wire: Wire, reply: Reply, model: str, tokens: TokenCounts, include_usage: bool) -> list[bytes]:
    if wire == "openai_chat":
        return chat_stream(reply, model, tokens, include_usage=include_usage)
    render = {"openai_responses": responses_stream, "anthropic": anthropic_stream, "gemini": gemini_stream}[wire]
    return render(reply, model, tokens)


def _log_body(path: str, body: object) -> None:
    target = os.environ.get(LOG_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"path": path, "body": body}) + "\n")
