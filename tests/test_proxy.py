"""The metering proxy against a scripted upstream on 127.0.0.1: relay, usage, cost, auth, routing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import genai_prices
import pytest
from tests.test_proxy_fakeupstream import (
    ANTH_MODEL,
    BODIES,
    EXPECTED,
    REAL_KEY,
    SERVED,
    STREAMS,
    FakeUpstream,
    Scripted,
    agent_request,
    chat_stream,
)

from shipbench.config import Budget, Pricing
from shipbench.proxy import Lease, MeteringProxy, RetryPolicy, UpstreamTarget
from shipbench.store.records import LlmCallRecord

WIRES = ["openai_chat", "openai_responses", "anthropic_messages", "gemini"]
PROVIDER = {"openai_chat": "openrouter", "openai_responses": "openai", "anthropic_messages": "anthropic",
            "gemini": "google"}
FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=1.0)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@dataclass
class Env:
    up: FakeUpstream
    proxy: MeteringProxy
    base: str
    lease: Lease
    http: aiohttp.ClientSession
    calls_path: Path

    def records(self) -> list[LlmCallRecord]:
        if not self.calls_path.exists():
            return []
        return [LlmCallRecord.model_validate_json(line) for line in self.calls_path.read_text().splitlines()]

    async def send(self, wire: str, stream: bool, *, token: str | None = None,
                   chunks: list[bytes] | None = None) -> tuple[int, bytes]:
        path, headers, body = agent_request(wire, stream, token or self.lease.token)
        async with self.http.post(self.base + path, data=body, headers=headers) as resp:
            data = b""
            async for chunk in resp.content.iter_any():
                data += chunk
                if chunks is not None:
                    chunks.append(chunk)
            return resp.status, data


@asynccontextmanager
async def proxy_env(tmp_path: Path, *, provider: str = "openrouter", policy: RetryPolicy = FAST,
                    timeout: float = 5.0, budget: Budget | None = None, pricing: Pricing | None = None,
                    **target: Any) -> AsyncIterator[Env]:
    up = FakeUpstream()
    await up.start()
    proxy = MeteringProxy(retry=policy, request_timeout_s=timeout)
    base = await proxy.start()
    calls_path = tmp_path / "phases" / "1" / "llm_calls.jsonl"
    upstream = UpstreamTarget(provider=provider, base_url=up.url, api_key=REAL_KEY, pricing=pricing, **target)
    lease = proxy.open_lease(trial_id="t1", phase=1, upstream=upstream, budget=budget or Budget(),
                             calls_path=calls_path)
    http = aiohttp.ClientSession()
    try:
        yield Env(up, proxy, base, lease, http, calls_path)
    finally:
        await http.close()
        await proxy.stop()
        await up.stop()


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("wire", WIRES)
def test_relay_and_usage_per_wire(tmp_path: Path, wire: str, stream: bool) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider=PROVIDER[wire]) as env:
            status, data = await env.send(wire, stream)
            assert status == 200
            if stream:
                assert data == b"".join(STREAMS[wire]())  # byte for byte what the upstream sent
            else:
                assert json.loads(data) == BODIES[wire]()
            [rec] = env.records()
            assert rec.usage.model_dump() == EXPECTED[wire]
            assert rec.stream is stream and rec.wire == wire and rec.status == 200 and rec.attempts == 1
            assert rec.model_served == SERVED[wire]
            assert rec.upstream == PROVIDER[wire] and rec.error_class is None
            assert rec.ttft_ms is not None and rec.latency_ms >= rec.ttft_ms
            assert env.lease.usage.model_dump() == EXPECTED[wire]
            assert env.lease.calls == 1 and env.lease.models_served == {SERVED[wire]: 1}
            u = rec.usage  # the normalisation invariant: input + cache = the whole prompt the upstream reported
            prompt = {"openai_chat": 1200, "openai_responses": 2000, "anthropic_messages": 3412, "gemini": 900}
            assert u.input_tokens + u.cache_read_tokens + u.cache_write_tokens == prompt[wire]

    run(body())


def test_upstream_auth_and_headers_per_provider(tmp_path: Path) -> None:
    async def body() -> None:
        for wire in WIRES:
            async with proxy_env(tmp_path / wire, provider=PROVIDER[wire]) as env:
                await env.send(wire, True)
                [req] = env.up.requests
                low = {k.lower(): v for k, v in req.headers.items()}
                assert env.lease.token not in json.dumps(req.headers) + req.path + json.dumps(req.query)
                if wire == "anthropic_messages":
                    assert low["x-api-key"] == REAL_KEY and "authorization" not in low
                    assert low["anthropic-version"] == "2023-06-01"
                    assert low["anthropic-beta"] == "claude-code-20250219"
                    assert req.query == {"beta": "true"}
                elif wire == "gemini":
                    assert low["x-goog-api-key"] == REAL_KEY and "authorization" not in low
                    assert req.query == {"alt": "sse"}
                else:
                    assert low["authorization"] == f"Bearer {REAL_KEY}" and "x-api-key" not in low
                if wire == "openai_chat":  # usage requested so that the stream can be metered
                    assert req.json()["stream_options"] == {"include_usage": True}

    run(body())


def test_replay_upstream_gets_no_key_but_extra_headers(tmp_path: Path) -> None:
    async def body() -> None:
        extra = {"X-Shipbench-Workspace": "/tmp/ws", "X-Title": "shipbench"}
        async with proxy_env(tmp_path, provider="replay", extra_headers=extra) as env:
            await env.send("anthropic_messages", False)
            low = {k.lower(): v for k, v in env.up.requests[0].headers.items()}
            assert "x-api-key" not in low and "authorization" not in low
            assert low["x-shipbench-workspace"] == "/tmp/ws" and low["x-title"] == "shipbench"

    run(body())


def test_stream_is_relayed_as_it_arrives(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path) as env:
            gate = asyncio.Event()
            env.up.queue.append(Scripted(events=chat_stream(), gate=gate))
            path, headers, payload = agent_request("openai_chat", True, env.lease.token)
            async with env.http.post(env.base + path, data=payload, headers=headers) as resp:
                first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 2.0)  # upstream is still blocked
                assert first == chat_stream()[0]
                assert not gate.is_set() and env.records() == []
                gate.set()
                rest = await resp.read()
            assert first + rest == b"".join(chat_stream())
            assert env.records()[0].usage.model_dump() == EXPECTED["openai_chat"]

    run(body())


def test_cost_from_genai_prices_and_upstream_cost(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="anthropic") as env:
            await env.send("anthropic_messages", True)
            [rec] = env.records()
            expected = genai_prices.calc_price(
                genai_prices.Usage(input_tokens=12 + 3000 + 400, output_tokens=77, cache_read_tokens=3000,
                                   cache_write_tokens=400), ANTH_MODEL, provider_id="anthropic")
            assert rec.cost_usd == pytest.approx(float(expected.total_price), rel=1e-12)
            # by hand, claude sonnet 4.5 at $3 in / $15 out / $0.30 cache read / $3.75 cache write per MTok
            assert rec.cost_usd == pytest.approx((12 * 3 + 77 * 15 + 3000 * 0.3 + 400 * 3.75) / 1e6)
            assert rec.price_source == f"genai-prices {genai_prices.__version__}"
            assert env.lease.cost_usd == pytest.approx(rec.cost_usd)
        async with proxy_env(tmp_path / "or", provider="openrouter") as env:
            await env.send("openai_chat", True)
            [rec] = env.records()
            assert rec.upstream_cost_usd == 0.0123 and rec.upstream_provider == "Anthropic"
            assert rec.cost_usd is not None and rec.cost_usd > 0

    run(body())


def test_pricing_override_wins_and_unknown_model(tmp_path: Path) -> None:
    async def body() -> None:
        pricing = Pricing(input_per_mtok=1, output_per_mtok=2, cache_read_per_mtok=0.5, cache_write_per_mtok=4)
        async with proxy_env(tmp_path, provider="google", pricing=pricing) as env:
            await env.send("gemini", False)
            [rec] = env.records()
            assert rec.price_source == "suite override"
            assert rec.cost_usd == pytest.approx((500 * 1 + 90 * 2 + 400 * 0.5) / 1e6)
        async with proxy_env(tmp_path / "u", provider="openai_compatible", model_override="no-such-model-xyz") as env:
            env.up.queue.append(Scripted(body={**BODIES["openai_chat"](), "model": "no-such-model-xyz"}))
            await env.send("openai_chat", False)
            [rec] = env.records()
            assert env.up.requests[0].json()["model"] == "no-such-model-xyz"  # the override reached upstream
            assert rec.cost_usd is None and rec.price_source == "unknown model"
            assert rec.model_requested == "no-such-model-xyz"

    run(body())


@pytest.mark.parametrize("wire", WIRES)
def test_bad_or_closed_token_is_401_in_wire_shape(tmp_path: Path, wire: str) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="replay") as env:
            status, data = await env.send(wire, False, token="not-a-lease")
            assert status == 401
            err = json.loads(data)
            if wire == "anthropic_messages":
                assert err["type"] == "error" and err["error"]["type"] == "authentication_error"
            elif wire == "gemini":
                assert err["error"]["status"] == "UNAUTHENTICATED" and err["error"]["code"] == 401
            else:
                assert err["error"]["code"] == "invalid_api_key"
            env.proxy.close_lease(env.lease)
            status, _ = await env.send(wire, False)
            assert status == 401
            assert env.up.requests == [] and env.records() == []

    run(body())


def test_token_in_query_key_and_key_not_forwarded(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="google") as env:
            url = f"{env.base}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key={env.lease.token}"
            async with env.http.post(url, json={"contents": []}) as resp:
                assert resp.status == 200
                await resp.read()
            assert env.up.requests[0].query == {"alt": "sse"}

    run(body())


def test_models_listing_forwarded_unmetered_and_unknown_route(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="openai_compatible") as env:
            auth = {"Authorization": f"Bearer {env.lease.token}"}
            async with env.http.get(env.base + "/v1/models", headers=auth) as resp:
                assert resp.status == 200 and (await resp.json())["object"] == "list"
            async with env.http.post(env.base + "/v2/whatever", headers=auth, json={}) as resp:
                assert resp.status == 404 and "no route" in (await resp.json())["error"]["message"]
            assert env.records() == [] and env.lease.calls == 0

    run(body())


def test_wire_not_spoken_by_provider_is_400(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="anthropic") as env:
            status, data = await env.send("gemini", False)
            assert status == 400 and "does not speak gemini" in data.decode()
            assert env.up.requests == []

    run(body())


def test_base_url_with_v1_suffix_is_not_doubled(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="openai_compatible") as env:
            lease = env.proxy.open_lease(
                trial_id="t1", phase=2, budget=Budget(), calls_path=tmp_path / "p2.jsonl",
                upstream=UpstreamTarget(provider="openai_compatible", base_url=env.up.url + "/v1/", api_key=None))
            await env.send("openai_chat", False, token=lease.token)
            assert env.up.requests[0].path == "/v1/chat/completions"
            assert "authorization" not in {k.lower() for k in env.up.requests[0].headers}

    run(body())
