"""One proxied call: upstream attempts with retries, then the relay to the agent (streamed or whole).

Invariants: SSE bytes are written to the agent as they arrive (no whole-response buffering) and a copy
is decoded for usage; no retry happens once a byte was relayed (the response is prepared lazily, on the
first upstream chunk); the per-provider limiter is held during an attempt, never during a backoff
sleep; the real key is redacted from every body we relay whole and from every message we generate; a metered
stream that answers 200 with no byte at all is retried like a 5xx, then failed as `empty_stream` (an agent must
never take it for an answer; a self-hosted server is first asked the request whole, and its error, e.g. the 400 of
a context overflow, is the answer); a metered stream that ends without a finish reason is marked
`truncated_stream`, and one whose connection drops after its finish reason is a whole answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from shipbench.agents.base import WireApi
from shipbench.proxy.retry import (
    RetryPolicy,
    classify_exception,
    classify_status,
    parse_retry_after,
    retryable_status,
)
from shipbench.proxy.sse import SseDecoder
from shipbench.proxy.usage import Meter
from shipbench.proxy.wires import error_body, response_headers

REDACTED = b"[REDACTED]"


@dataclass
class Call:
    """What to send, and (filled while forwarding) what happened."""

    wire: WireApi
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    stream: bool = False  # the agent asked for a stream (relayed chunk by chunk whatever the content type)
    started: float = field(default_factory=time.monotonic)
    attempts: int = 0
    status: int = 0
    error_class: str | None = None
    ttft_ms: float | None = None
    relayed: bool = False
    meter: Meter | None = None
    response: web.StreamResponse | None = None  # set once the relay to the agent has started
    # run once the whole answer is in and before its end reaches the agent (a stream's bytes from its finish
    # reason on are held until then), so a call is metered before the agent can act on it
    on_answer: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    # an empty 200 stream: the same request asked whole; its (status >= 400, body) when it failed, else None
    diagnose: Callable[[], Awaitable[tuple[int, bytes] | None]] | None = field(default=None, repr=False)

    def redact(self, data: bytes) -> bytes:
        if self.secret and self.secret.encode() in data:
            return data.replace(self.secret.encode(), REDACTED)
        return data

    def redact_text(self, text: str) -> str:
        return text.replace(self.secret, REDACTED.decode()) if self.secret else text


class _Retry(Exception):
    def __init__(self, delay: float) -> None:
        self.delay = delay


async def forward(request: web.Request, session: aiohttp.ClientSession, call: Call, *, policy: RetryPolicy,
                  timeout: aiohttp.ClientTimeout, limiter: asyncio.Semaphore | None) -> web.StreamResponse:
    """Send `call` upstream (retrying 429/5xx/network errors) and relay the answer to the agent."""
    total = policy.max_retries + 1
    while True:
        call.attempts += 1
        last = call.attempts >= total
        try:
            if limiter is not None:
                async with limiter:
                    return await _attempt(request, session, call, policy, timeout, last)
            return await _attempt(request, session, call, policy, timeout, last)
        except _Retry as retry:
            await asyncio.sleep(retry.delay)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            kind = classify_exception(exc)
            if call.response is not None:  # the stream broke after bytes reached the agent: nothing to retry
                call.error_class = kind
                return call.response
            if last:
                return _fail(call, kind, f"upstream unreachable after {call.attempts} attempt(s): "
                                         f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(policy.delay(call.attempts, None))


def _fail(call: Call, kind: str, message: str) -> web.Response:
    call.status = 504 if kind == "timeout" else 502
    call.error_class = kind
    text = call.redact_text(f"shipbench proxy: {message}")
    return web.Response(status=call.status, body=error_body(call.wire, call.status, text, kind),
                        content_type="application/json")


async def _attempt(request: web.Request, session: aiohttp.ClientSession, call: Call, policy: RetryPolicy,
                   timeout: aiohttp.ClientTimeout, last: bool) -> web.StreamResponse:
    body = call.body if request.method == "POST" else None
    async with session.request(request.method, call.url, data=body, headers=call.headers, timeout=timeout,
                               allow_redirects=False) as up:
        if retryable_status(up.status) and not last:
            await up.read()  # drain so the connection can be reused
            raise _Retry(policy.delay(call.attempts, parse_retry_after(up.headers)))
        call.status = up.status
        call.error_class = classify_status(up.status)
        if up.status < 300 and (call.stream or up.content_type == "text/event-stream"):
            return await _relay_stream(request, up, call, policy, last)
        data = await up.read()
        _mark_first_byte(call)
        if call.meter is not None and up.status < 300:
            call.meter.feed_json_text(data)
            if call.on_answer is not None:
                await call.on_answer()
        return web.Response(status=up.status, body=call.redact(data), headers=response_headers(up.headers.items()))


def _mark_first_byte(call: Call) -> None:
    if call.ttft_ms is None:
        call.ttft_ms = (time.monotonic() - call.started) * 1000.0


async def _relay_stream(request: web.Request, up: aiohttp.ClientResponse, call: Call, policy: RetryPolicy,
                        last: bool) -> web.StreamResponse:
    decoder = SseDecoder()
    resp = web.StreamResponse(status=up.status, headers=response_headers(up.headers.items()))
    held: list[bytes] = []  # the answer's end (from its finish reason on), kept until it is metered
    try:
        try:
            async for chunk in up.content.iter_any():
                if not chunk:
                    continue
                await _start(request, resp, call)
                _meter_chunk(call.meter, decoder, chunk)
                if held or (call.meter is not None and call.meter.finished):
                    held.append(chunk)
                else:
                    await _write(resp, chunk)
        except (aiohttp.ClientError, TimeoutError, OSError):
            if call.meter is None or not call.meter.finished:
                raise  # forward() decides: retried when nothing was relayed, else the stream's error class
            # the upstream hung up after the answer's finish: the answer is whole, keep it
        if call.response is None and call.meter is not None:  # HTTP 200 and not one byte: no answer at all
            return await _empty_stream(call, up.status, policy, last)
        await _start(request, resp, call)  # an unmetered empty stream still gets the upstream's status and headers
        for event in decoder.close():
            if call.meter is not None:
                call.meter.feed_sse_data(event.data)
        if call.meter is not None and not call.meter.finished:
            call.error_class = "truncated_stream"  # relayed as is; the answer has no end
        if call.on_answer is not None and call.meter is not None:
            await call.on_answer()
        for chunk in held:
            await _write(resp, chunk)
        await _write_eof(resp)
    except _AgentGone:
        call.error_class = "client_closed"  # the agent went away (e.g. killed by a watchdog)
    return resp


async def _empty_stream(call: Call, status: int, policy: RetryPolicy, last: bool) -> web.StreamResponse:
    """An empty 200 stream: a self-hosted server is asked the same request whole, whose error (a context overflow
    is a 400 there) is what the agent gets, as it would without streaming; else retried, then failed."""
    answer = await call.diagnose() if call.diagnose is not None else None
    if answer is not None:
        call.status, body = answer
        call.error_class = classify_status(call.status)
        return web.Response(status=call.status, body=call.redact(body), content_type="application/json")
    if not last:
        raise _Retry(policy.delay(call.attempts, None))
    return _fail(call, "empty_stream", f"the upstream answered HTTP {status} with an empty stream "
                                       f"{call.attempts} time(s) (a local server does this when the prompt "
                                       "exceeds its context window)")


class _AgentGone(Exception):
    pass


async def _start(request: web.Request, resp: web.StreamResponse, call: Call) -> None:
    if call.response is not None:
        return
    _mark_first_byte(call)
    try:
        await resp.prepare(request)
    except ConnectionResetError as exc:
        raise _AgentGone from exc
    call.response = resp
    call.relayed = True


async def _write(resp: web.StreamResponse, chunk: bytes) -> None:
    try:
        await resp.write(chunk)
    except ConnectionResetError as exc:
        raise _AgentGone from exc


async def _write_eof(resp: web.StreamResponse) -> None:
    try:
        await resp.write_eof()
    except ConnectionResetError as exc:
        raise _AgentGone from exc


def _meter_chunk(meter: Meter | None, decoder: SseDecoder, chunk: bytes) -> None:
    if meter is None:
        return
    for event in decoder.feed(chunk):
        meter.feed_sse_data(event.data)
