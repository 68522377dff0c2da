"""The `replay` upstream: an aiohttp server on 127.0.0.1 that answers the four provider wires from a trajectory.

Invariants: stateless per request (see script.py), apart from the fault budget (`Fault.times` counts down
for the `status` and `garbage` kinds; every other kind applies to every request) and, for the ollama persona,
the models it has loaded (`loaded`: model -> context); every request, faulted or not, is appended to
`requests` before it is answered; it never reads or stores credentials.
A `persona` (see personas.py) adds that server's metadata endpoints with its JSON shapes and its context limit:
a prompt of more than `n_ctx` tokens (frames.count_tokens) is refused like that server refuses it (non-streamed:
HTTP 400 with its error body; streamed: HTTP 200 with an empty body, vLLM: 400), except by ollama, which
truncates silently (the `context` fault enforces the limit with or without a persona). `served_models` is what
the model lists name; a wire in `disabled_wires` answers 404 like a server without that API. A request that
forces a tool (tool_choice) outside any scripted phase gets a call of that tool with schema-minimal arguments.
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

from shipbench.replay import personas
from shipbench.replay.conversation import Conversation, Wire, infer_workdir, parse_request
from shipbench.replay.frames import TokenCounts, ceil_quarter, count_tokens, error_body, prompt_bytes
from shipbench.replay.personas import Persona
from shipbench.replay.script import UNSCRIPTED_TEXT, Reply, ToolCall, decide, schema_instance
from shipbench.replay.trajectory import Trajectory
from shipbench.replay.wire_anthropic_gemini import anthropic_json, anthropic_stream, gemini_json, gemini_stream
from shipbench.replay.wire_openai import chat_json, chat_stream, responses_json, responses_stream

WORKSPACE_HEADER = "X-Shipbench-Workspace"
LOG_ENV = "SHIPBENCH_REPLAY_LOG"
GARBAGE_FRAMES = (b'data: {"choices": [\n\n', b"event: \x00\x01\ndata: not json at all\n\n", b"data: }{\n")


class Fault(BaseModel):
    """Scripted misbehaviour for fault tests.

    no_stream_usage: streamed chat answers carry no usage whatever stream_options asks (like llama-cpp-python);
    empty_stream: a streamed request gets HTTP 200 text/event-stream with an empty body; context: prompts over
    the server's n_ctx are refused (see the module docstring); tools_as_text: a tool call is sent as assistant
    text `<tool_call>{"name": ..., "arguments": ...}</tool_call>` instead of a structured call.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal[
        "status", "hang", "loop", "slow", "garbage", "no_stream_usage", "empty_stream", "context", "tools_as_text"
    ]
    status: int = 500
    times: int = 1
    retry_after: float | None = None
    delay_s: float = 0


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_RECORD = web.RequestKey("record", dict[str, Any])
_WIRE_ALIASES: dict[str, Wire] = {"anthropic_messages": "anthropic"}
_WIRE_PATHS: dict[Wire, str] = {"openai_chat": "/v1/chat/completions", "openai_responses": "/v1/responses",
                                "anthropic": "/v1/messages", "gemini": "/v1beta/models/"}


class ReplayServer:
    def __init__(
        self,
        trajectory: Trajectory,
        *,
        fault: Fault | None = None,
        persona: Persona | None = None,
        n_ctx: int = 131_072,
        native_ctx: int = 131_072,
        served_models: list[str] | None = None,
        disabled_wires: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        self.trajectory = trajectory
        self.fault = fault
        self.persona: Persona | None = persona
        self.n_ctx = n_ctx  # the context served (ollama: the one a model loads with unless a request says)
        self.native_ctx = native_ctx  # the model's trained context, where the persona states one
        self.served_models = list(served_models) if served_models is not None else ["replay"]
        self.disabled_wires: frozenset[Wire] = frozenset(_wire_name(w) for w in disabled_wires)
        self.loaded: dict[str, int] = {}  # ollama persona: model -> context it is loaded with
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
        self._add_persona_routes(app)
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
        if wire in self.disabled_wires:
            record["fault"] = "disabled_wire"
            return self._not_found(request.path)
        if not isinstance(body, dict):
            return web.json_response(error_body(wire, 400, "request body is not a JSON object"), status=400)
        model, stream = self._model_and_stream(wire, request, body)
        record.update(model=model, stream=stream)
        faulted = await self._apply_fault(wire, stream, request, record)
        if faulted is not None:
            return faulted
        refused = await self._context_refusal(wire, raw, model, stream, request, record)
        if refused is not None:
            return refused
        if self.persona == "ollama":
            self.loaded.setdefault(model, self.n_ctx)
        conv = parse_request(wire, body, model=model, stream=stream)
        workspace = request.headers.get(WORKSPACE_HEADER) or infer_workdir(conv)
        reply = _forced_tool(wire, body, conv, decide(self.trajectory, conv, workspace=workspace,
                                                       loop=self._kind() == "loop"))
        if self._kind() == "tools_as_text" and reply.tool_call is not None:
            record["fault"] = "tools_as_text"
            reply = Reply(text=tool_call_text(reply.tool_call), phase=reply.phase, step=reply.step)
        tokens = count_tokens(wire, self._prompt_source(raw, body), reply.output_text)
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
        if self._kind() == "empty_stream":
            record["fault"] = "empty_stream"
            return await self._send_frames(request, [])
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if self._kind() == "no_stream_usage" or self.persona == "llama-cpp-python":
            include_usage = False
        return await self._send_frames(request, _render_stream(wire, reply, model, tokens, include_usage))

    def _context_limit(self, model: str) -> int | None:
        """The prompt tokens beyond which a request is refused (None: never refused)."""
        if self._kind() == "context":
            return self.loaded.get(model, self.n_ctx) if self.persona == "ollama" else self.n_ctx
        if self.persona is None or self.persona == "ollama":
            return None
        return self.n_ctx

    def _prompt_source(self, raw: bytes, body: dict[str, Any] | None) -> bytes:
        """What the prompt count is taken from: a persona counts the conversation like a real server (see
        frames.prompt_bytes); the plain replay counts the raw body, as it always did."""
        return prompt_bytes(body) if self.persona is not None and body is not None else raw

    async def _context_refusal(
        self, wire: Wire, raw: bytes, model: str, stream: bool, request: web.Request, record: dict[str, Any]
    ) -> web.StreamResponse | None:
        limit = self._context_limit(model)
        prompt = ceil_quarter(len(self._prompt_source(raw, _json_object(raw))))
        if limit is None or prompt <= limit:
            return None
        record.update(fault="context", reported_prompt_tokens=prompt)
        if stream and self.persona != "vllm":
            return await self._send_frames(request, [])
        return web.json_response(personas.context_error(self.persona, prompt, limit), status=400)

    def _not_found(self, path: str) -> web.Response:
        status, payload = personas.not_found(self.persona, path)
        if isinstance(payload, str):
            return web.Response(status=status, text=payload, content_type="text/plain")
        return web.json_response(payload, status=status)

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
        if fault is None or fault.kind not in ("hang", "status", "garbage"):
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
        models = self.served_models
        if self.persona == "llama.cpp":
            return web.json_response(personas.llama_cpp_models(models, self.native_ctx))
        if self.persona == "vllm":
            return web.json_response(personas.vllm_models(models, self.n_ctx))
        if self.persona is not None:
            owner = "me" if self.persona == "llama-cpp-python" else "library"
            return web.json_response(personas.openai_models([_ollama_tagged(m, self.persona) for m in models], owner))
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "shipbench"} for m in models]
        return web.json_response({"object": "list", "data": data})

    async def _unknown(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests.append({"method": request.method, "path": request.path, "wire": None})
        return self._not_found(request.path)

    def _add_persona_routes(self, app: web.Application) -> None:
        routes: list[tuple[str, str, Handler]] = []
        if self.persona == "llama.cpp":
            routes = [("GET", "/health", self._ok_status), ("GET", "/props", self._props),
                      ("POST", "/tokenize", self._tokenize)]
        elif self.persona == "llama-cpp-python":
            routes = [("POST", "/extras/tokenize", self._tokenize), ("POST", "/extras/tokenize/count", self._tokenize)]
        elif self.persona == "vllm":
            routes = [("GET", "/health", self._empty_ok), ("GET", "/version", self._version),
                      ("POST", "/tokenize", self._tokenize)]
        elif self.persona == "ollama":
            routes = [("GET", "/api/version", self._version), ("GET", "/api/tags", self._ollama_tags),
                      ("POST", "/api/show", self._ollama_show), ("GET", "/api/ps", self._ollama_ps),
                      ("POST", "/api/chat", self._ollama_chat)]
        for method, path, handler in routes:
            app.router.add_route(method, path, self._meta(handler))

    def _meta(self, handler: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            record: dict[str, Any] = {"method": request.method, "path": request.path, "wire": None, "meta": True}
            self.requests.append(record)
            request[_RECORD] = record
            return await handler(request)

        return handle

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return body if isinstance(body, dict) else {}

    async def _ok_status(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _empty_ok(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _version(self, request: web.Request) -> web.Response:
        version = personas.OLLAMA_VERSION if self.persona == "ollama" else personas.VLLM_VERSION
        return web.json_response({"version": version})

    async def _props(self, request: web.Request) -> web.Response:
        return web.json_response(personas.llama_cpp_props(self.served_models[0], self.n_ctx))

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        text = body.get("content", body.get("input", body.get("prompt", "")))
        tokens = personas.token_ids(text if isinstance(text, str) else json.dumps(text))
        if request.path.endswith("/count"):
            return web.json_response({"count": len(tokens)})
        if self.persona == "vllm":
            return web.json_response({"count": len(tokens), "max_model_len": self.n_ctx, "tokens": tokens,
                                      "token_strs": None})
        return web.json_response({"tokens": tokens})

    def _ollama_known(self, model: object) -> str | None:
        names = {personas.ollama_name(m): m for m in self.served_models}
        return names.get(personas.ollama_name(model)) if isinstance(model, str) and model else None

    async def _ollama_tags(self, request: web.Request) -> web.Response:
        return web.json_response(personas.ollama_tags(self.served_models))

    async def _ollama_show(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        model = self._ollama_known(body.get("model", body.get("name")))
        if model is None:
            return web.json_response({"error": f"model '{body.get('model')}' not found"}, status=404)
        return web.json_response(personas.ollama_show(model, self.native_ctx, None))

    async def _ollama_ps(self, request: web.Request) -> web.Response:
        return web.json_response(personas.ollama_ps(self.loaded))

    async def _ollama_chat(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return web.json_response({"error": "invalid request body"}, status=400)
        model = self._ollama_known(body.get("model"))
        if model is None:
            message = f"model '{body.get('model')}' not found, try pulling it first"
            return web.json_response({"error": message}, status=404)
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        keep_alive = body.get("keep_alive")
        request[_RECORD].update(model=model, keep_alive=keep_alive, options=options)
        if keep_alive in (0, "0", "0s"):
            self.loaded.pop(model, None)
        else:
            ctx = options.get("num_ctx") if isinstance(options, dict) else None
            self.loaded[model] = ctx if isinstance(ctx, int) and ctx > 0 else self.n_ctx
        return web.json_response(personas.ollama_chat(model, "OK", ceil_quarter(len(raw))))


def _wire_name(name: str) -> Wire:
    wire = _WIRE_ALIASES.get(name, name)
    if wire not in _WIRE_PATHS:
        raise ValueError(f"unknown wire {name!r} (one of: {', '.join(_WIRE_PATHS)}, anthropic_messages)")
    return wire


def _ollama_tagged(model: str, persona: Persona) -> str:
    return personas.ollama_name(model) if persona == "ollama" else model


def tool_call_text(call: ToolCall) -> str:
    """A tool call as a model without a tool-call parser writes it: in the text."""
    return "<tool_call>" + json.dumps({"name": call.name, "arguments": call.arguments}) + "</tool_call>"


def forced_tool_name(wire: Wire, body: dict[str, Any], conv: Conversation) -> str | None:
    """The tool the request forces (tool_choice naming one, or "any tool" with a single tool offered)."""
    single = conv.tools[0].name if len(conv.tools) == 1 else None
    if wire == "gemini":
        config = body.get("toolConfig")
        calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
        if not isinstance(calling, dict) or str(calling.get("mode", "")).upper() != "ANY":
            return None
        allowed = calling.get("allowedFunctionNames")
        names = [n for n in allowed if isinstance(n, str)] if isinstance(allowed, list) else []
        return names[0] if len(names) == 1 else single
    choice = body.get("tool_choice")
    if choice in ("required", "any"):
        return single
    if not isinstance(choice, dict):
        return None
    if choice.get("type") in ("any", "required"):
        return single
    fn = choice.get("function")
    name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
    return name if isinstance(name, str) and conv.tool(name) else None


def _forced_tool(wire: Wire, body: dict[str, Any], conv: Conversation, reply: Reply) -> Reply:
    """An unscripted request that forces a tool gets a call of it (like a server honouring tool_choice)."""
    if reply.tool_call is not None or reply.text != UNSCRIPTED_TEXT:
        return reply
    name = forced_tool_name(wire, body, conv)
    spec = conv.tool(name) if name else None
    if spec is None:
        return reply
    schema = {"type": "object", "properties": spec.properties, "required": list(spec.required)}
    args = schema_instance(schema)
    return Reply(tool_call=ToolCall(spec.name, args if isinstance(args, dict) else {}))


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


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
