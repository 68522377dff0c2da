"""MeteringProxy: the only LLM endpoint an agent sees; meters, budgets and forwards every call.

Invariants: a request is forwarded only with a live lease token (else 401 in the wire's error shape)
and only while the trial's budget is not reached; every metered call (forwarded or refused) appends
exactly one LlmCallRecord line to its lease's calls_path and is added to the lease's totals, even
when the agent disconnects or the handler is cancelled; the real key never leaves the upstream
request headers (records, logs and bodies returned to the agent never contain it); with `unix_socket`, the same
app also listens on `unix_path`, a socket in a private 0700 directory that stop() removes (proxy-only sandboxes);
an answered call whose upstream sent no usage is counted (proxy/counting.py) and its record says by whom
(`usage_source`), so a server that reports nothing never reads as 0 tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from shipbench.agents.base import Usage, WireApi
from shipbench.config import PROVIDER_WIRES, Budget
from shipbench.proxy.counting import Counted, count_missing, estimate, reask, server_prompt_tokens
from shipbench.proxy.forward import Call, forward
from shipbench.proxy.pricing import price_call
from shipbench.proxy.retry import RetryPolicy
from shipbench.proxy.types import Lease, UpstreamTarget
from shipbench.proxy.usage import Meter
from shipbench.proxy.wires import (
    Matched,
    candidate_tokens,
    error_body,
    gemini_path,
    inspect_request,
    match_route,
    upstream_headers,
    upstream_url,
    wire_of_path,
)
from shipbench.serving.base import server_session
from shipbench.serving.registry import BACKENDS
from shipbench.store.records import LlmCallRecord, UsageSource

MAX_REQUEST_BYTES = 256 * 1024 * 1024  # agents resend the whole conversation every turn
DEFAULT_RETRY = RetryPolicy()
MAX_SOCKET_DIR = 90  # + "/proxy.sock" stays within a Unix socket path's limit
NO_USAGE = Usage()  # never mutated (Usage.__add__ returns a new object)


class MeteringProxy:
    def __init__(self, *, retry: RetryPolicy = DEFAULT_RETRY, request_timeout_s: float = 600) -> None:
        self._retry = retry
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(30.0, request_timeout_s),
                                              sock_read=request_timeout_s)
        self._leases: dict[str, Lease] = {}
        self._inflight: dict[str, set[asyncio.Task[Any]]] = {}  # lease token -> handler tasks of its calls
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""
        self.unix_path: Path | None = None  # the Unix socket a proxy-only sandbox reaches the proxy through
        self._tokenizer: TokenizerFactory | None = None

    async def start(self, *, unix_socket: bool = False) -> str:
        """Listen on 127.0.0.1 (ephemeral port), and on `unix_path` too when asked; returns the base URL,
        e.g. http://127.0.0.1:43123."""
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        if unix_socket:
            self.unix_path = _private_socket_path()
            await web.UnixSite(self._runner, str(self.unix_path)).start()
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=True,
                                              trust_env=False)
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.unix_path is not None:
            shutil.rmtree(self.unix_path.parent, ignore_errors=True)
            self.unix_path = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def open_lease(self, *, trial_id: str, phase: int, upstream: UpstreamTarget, budget: Budget,
                   calls_path: Path, spent: Usage = NO_USAGE, spent_usd: float = 0.0,
                   limiter: asyncio.Semaphore | None = None) -> Lease:
        lease = Lease(token=secrets.token_urlsafe(32), trial_id=trial_id, phase=phase, upstream=upstream,
                      budget=budget, calls_path=calls_path, spent=spent, spent_usd=spent_usd, limiter=limiter)
        calls_path.parent.mkdir(parents=True, exist_ok=True)
        lease.check_budget()  # earlier phases may already have spent it all
        self._leases[lease.token] = lease
        return lease

    def close_lease(self, lease: Lease) -> None:
        """Later calls with the token get 401; calls still in flight (an agent that is gone) are cancelled
        and recorded with error_class client_closed, so they hold no limiter slot and no socket."""
        lease.closed = True
        self._leases.pop(lease.token, None)
        for task in self._inflight.pop(lease.token, set()):
            task.cancel()

    def _lease_for(self, request: web.Request) -> Lease | None:
        for token in candidate_tokens(request.headers, request.rel_url.query):
            lease = self._leases.get(token)
            if lease is not None:
                return lease
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.path
        matched = match_route(request.method, path)
        if matched is None:
            return _error(wire_of_path(path), 404, f"shipbench proxy: no route for {request.method} {path}",
                          "not_found")
        wire = matched.route.wire
        lease = self._lease_for(request)
        if lease is None:
            return _error(wire, 401, "shipbench proxy: unknown or expired API key (lease token)", "invalid_api_key")
        if wire not in PROVIDER_WIRES.get(lease.upstream.provider, frozenset()):
            return _error(wire, 400, f"shipbench proxy: upstream {lease.upstream.provider} does not speak {wire}",
                          "invalid_request_error")
        body = await request.read() if request.method == "POST" else b""
        info = inspect_request(wire, matched, body, lease.upstream.model_override)
        call = self._call(request, lease, matched, info.body)
        if not matched.route.metered:
            return await self._forward(request, call, lease)
        return await self._metered(request, lease, call, info.model, info.stream)

    def _server_tokenizer(self, kind: str, base_url: str, model: str, *,
                          key: str | None = None) -> Callable[[str], Awaitable[int | None]] | None:
        """The serving backend's own tokenize endpoint (None for a kind that has none); a server started with an
        API key gets it as a Bearer token."""
        if kind not in BACKENDS or self._session is None:
            return None
        backend, shared = BACKENDS[kind], self._session
        if not backend.capabilities.tokenizes:
            return None

        async def tokenize(text: str) -> int | None:
            if not key:
                return await backend.tokenize(shared, base_url, model, text)
            async with server_session(key) as session:
                return await backend.tokenize(session, base_url, model, text)

        return tokenize

    def set_tokenizer(self, factory: TokenizerFactory | None) -> None:
        """How to reach a self-hosted server's tokenizer: (serving kind, base URL, model) -> count function."""
        self._tokenizer = factory

    def _call(self, request: web.Request, lease: Lease, matched: Matched, body: bytes) -> Call:
        up = lease.upstream
        path = request.rel_url.path
        if matched.route.wire == "gemini":
            path = gemini_path(path, matched, up.model_override)
        return Call(
            wire=matched.route.wire,
            url=upstream_url(up.base_url, path, request.rel_url.query.items()),
            headers=upstream_headers(request.headers.items(), up.provider, up.api_key, up.extra_headers),
            body=body,
            secret=up.api_key,
        )

    async def _forward(self, request: web.Request, call: Call, lease: Lease) -> web.StreamResponse:
        assert self._session is not None, "MeteringProxy.start() was not called"
        return await forward(request, self._session, call, policy=self._retry, timeout=self._timeout,
                             limiter=lease.limiter)

    async def _metered(self, request: web.Request, lease: Lease, call: Call, model: str | None,
                       stream: bool) -> web.StreamResponse:
        started_at = datetime.now(UTC)
        call.meter = Meter(call.wire)
        call.stream = stream
        lease.note_request(hashlib.sha256(call.body).hexdigest())
        counted: Counted | None = None
        latency_ms: float | None = None

        async def on_answer() -> None:
            nonlocal counted, latency_ms
            latency_ms = (time.monotonic() - call.started) * 1000.0
            if _answered(call) and not _has_usage(call.meter):
                counted = estimate(call.meter or Meter(call.wire), call.body)  # kept if counting is cancelled
                counted = await self._count(lease, call, model)

        call.on_answer = on_answer
        if lease.upstream.serving_kind is not None and call.wire == "openai_chat":
            call.diagnose = partial(self._diagnose, call)
        reason = lease.check_budget()
        task = asyncio.current_task()
        tasks = self._inflight.setdefault(lease.token, set())
        if task is not None:
            tasks.add(task)
        try:
            if reason is not None:
                call.status, call.error_class = 429, "budget"
                return _error(call.wire, 429, f"shipbench: trial budget exceeded ({reason}); call not forwarded",
                              "budget_exceeded")
            return await self._forward(request, call, lease)
        except asyncio.CancelledError:
            call.error_class = call.error_class or "client_closed"
            raise
        finally:
            if task is not None:
                tasks.discard(task)
            if not tasks and not lease.closed:
                self._inflight.pop(lease.token, None)
            self._record(lease, call, started_at=started_at, path=request.rel_url.path, model=model, stream=stream,
                         counted=counted, latency_ms=latency_ms)

    async def _diagnose(self, call: Call) -> tuple[int, bytes] | None:
        """Why a self-hosted server streamed nothing: its whole answer to the same request, when that is an error."""
        assert self._session is not None
        answer = await reask(self._session, call.url, call.headers, call.body)
        return answer if answer is not None and answer[0] >= 400 else None

    async def _count(self, lease: Lease, call: Call, model: str | None) -> Counted:
        """Usage for an answered call without any: the self-hosted server's own counts, else an estimate."""
        assert call.meter is not None and self._session is not None
        up, session = lease.upstream, self._session
        self_hosted = up.serving_kind is not None
        factory = self._tokenizer or partial(self._server_tokenizer, key=up.api_key)
        tokenize = factory(up.serving_kind, up.base_url, model or "") if up.serving_kind is not None else None

        async def prompt() -> int | None:
            return await server_prompt_tokens(session, call.url, call.headers, call.body)

        return await count_missing(call.meter, wire=call.wire, body=call.body, self_hosted=self_hosted,
                                   prompt_counter=prompt, tokenize=tokenize)

    def _record(self, lease: Lease, call: Call, *, started_at: datetime, path: str, model: str | None,
                stream: bool, counted: Counted | None = None, latency_ms: float | None = None) -> None:
        meter = call.meter or Meter(call.wire)
        usage, source = _usage_of(call, meter, counted)
        up = lease.upstream
        price = price_call(usage, provider=up.provider, models=(meter.model, model), pricing=up.pricing)
        record = LlmCallRecord(
            trial_id=lease.trial_id, phase=lease.phase, seq=lease.next_seq(), started_at=started_at,
            wire=call.wire, path=path, stream=stream, model_requested=model, model_served=meter.model,
            upstream=up.provider, upstream_provider=meter.provider, status=call.status, attempts=call.attempts,
            error_class=call.error_class, usage=usage, usage_source=source, finish_reason=meter.finish_reason,
            cost_usd=price.cost_usd,
            upstream_cost_usd=meter.upstream_cost, price_source=price.source,
            latency_ms=latency_ms if latency_ms is not None else (time.monotonic() - call.started) * 1000.0,
            ttft_ms=call.ttft_ms,
        )
        with lease.calls_path.open("a", encoding="utf-8") as fh:
            fh.write(record.model_dump_json() + "\n")
            fh.flush()
        lease.add(record)


TokenizerFactory = Callable[[str, str, str], Callable[[str], Awaitable[int | None]] | None]


def _answered(call: Call) -> bool:
    return 200 <= call.status < 300 and call.error_class in (None, "truncated_stream")


def _has_usage(meter: Meter | None) -> bool:
    """The upstream reported usage (a usage of zeros beside generated text counts as none)."""
    if meter is None or not meter.seen_usage:
        return False
    return meter.usage().total > 0 or meter.output_chars == 0


def _usage_of(call: Call, meter: Meter, counted: Counted | None) -> tuple[Usage, UsageSource | None]:
    """The call's usage and who counted it (None for a call that got no answer: nothing to count)."""
    if counted is not None:
        return counted.usage, counted.source
    if _has_usage(meter):
        return meter.usage(), "upstream"
    if _answered(call):  # no usage and not counted (e.g. cancelled while counting): say so, never a silent 0
        return Usage(), "none"
    return NO_USAGE, None


def _private_socket_path() -> Path:
    """A socket path in a fresh 0700 directory (under /tmp when $TMPDIR would exceed sun_path's 108 bytes)."""
    directory = tempfile.mkdtemp(prefix="shipbench-proxy-")
    if len(directory) > MAX_SOCKET_DIR:
        os.rmdir(directory)
        directory = tempfile.mkdtemp(prefix="shipbench-proxy-", dir="/tmp")
    return Path(directory) / "proxy.sock"


def _error(wire: WireApi, status: int, message: str, code: str) -> web.Response:
    return web.Response(status=status, body=error_body(wire, status, message, code), content_type="application/json")
