"""Proxy faults: retries, Retry-After, broken streams, timeouts, budgets, limiter, secrets, disconnects."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
from tests.test_proxy import PROVIDER, WIRES, proxy_env, run
from tests.test_proxy_fakeupstream import (
    EXPECTED,
    REAL_KEY,
    STREAMS,
    Scripted,
    agent_request,
    chat_stream,
)

from shipbench.agents.base import Usage
from shipbench.config import Budget, Pricing
from shipbench.proxy import RetryPolicy, UpstreamTarget

ERR_500 = {"error": {"message": "upstream exploded", "code": 500}}


def test_retry_500_then_200(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="anthropic") as env:
            env.up.queue.append(Scripted(status=500, body=ERR_500))
            status, data = await env.send("anthropic_messages", True)
            assert status == 200 and data == b"".join(STREAMS["anthropic_messages"]())
            [rec] = env.records()
            assert rec.attempts == 2 and rec.status == 200 and rec.error_class is None
            assert rec.usage.model_dump() == EXPECTED["anthropic_messages"]
            assert len(env.up.requests) == 2 and env.lease.provider_errors == 0

    run(body())


def test_429_retry_after_is_honoured(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, policy=RetryPolicy(max_retries=2, base_delay_s=0.001)) as env:
            env.up.queue.append(Scripted(status=429, body={"error": {"message": "slow down"}},
                                         headers={"Retry-After": "0.4"}))
            t0 = time.monotonic()
            status, _ = await env.send("openai_chat", False)
            assert status == 200 and time.monotonic() - t0 >= 0.4
            [rec] = env.records()
            assert rec.attempts == 2 and rec.usage.model_dump() == EXPECTED["openai_chat"]

    run(body())


def test_final_failure_relayed_with_upstream_status_and_body(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="google") as env:  # FAST: 2 retries -> 3 attempts
            env.up.queue.extend(Scripted(status=503, body=ERR_500) for _ in range(3))
            status, data = await env.send("gemini", True)
            assert status == 503 and json.loads(data) == ERR_500
            [rec] = env.records()
            assert rec.attempts == 3 and rec.error_class == "server_error" and rec.status == 503
            assert env.lease.provider_errors == 1 and env.lease.last_error_class == "server_error"
            env.up.queue.append(Scripted(status=400, body={"error": {"message": "bad"}}))
            status, _ = await env.send("gemini", False)  # 4xx: never retried
            assert status == 400 and env.records()[-1].attempts == 1
            assert env.records()[-1].error_class == "bad_request" and len(env.up.requests) == 4

    run(body())


def test_no_retry_once_stream_started(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path) as env:
            env.up.queue.append(Scripted(events=chat_stream(), break_after=2))
            path, headers, payload = agent_request("openai_chat", True, env.lease.token)
            got = b""
            async with env.http.post(env.base + path, data=payload, headers=headers) as resp:
                assert resp.status == 200
                try:
                    async for chunk in resp.content.iter_any():
                        got += chunk
                except aiohttp.ClientPayloadError:
                    pass
            assert got.startswith(b"".join(chat_stream()[:2]))
            assert len(env.up.requests) == 1
            [rec] = env.records()
            assert rec.attempts == 1 and rec.error_class == "network" and rec.status == 200
            assert env.lease.provider_errors == 1

    run(body())


def test_timeout_retried_then_504(tmp_path: Path) -> None:
    async def body() -> None:
        policy = RetryPolicy(max_retries=1, base_delay_s=0.01)
        async with proxy_env(tmp_path, provider="anthropic", policy=policy, timeout=0.3) as env:
            env.up.queue.extend([Scripted(hang_s=3), Scripted(hang_s=3)])
            status, data = await env.send("anthropic_messages", False)
            assert status == 504 and json.loads(data)["type"] == "error"
            [rec] = env.records()
            assert rec.attempts == 2 and rec.error_class == "timeout" and rec.status == 504

    run(body())


def test_connection_refused_is_network_error(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path) as env:
            lease = env.proxy.open_lease(trial_id="t1", phase=2, budget=Budget(), calls_path=tmp_path / "x.jsonl",
                                         upstream=UpstreamTarget("openrouter", "http://127.0.0.1:9", REAL_KEY))
            status, data = await env.send("openai_chat", False, token=lease.token)
            assert status == 502 and REAL_KEY not in data.decode()
            assert lease.provider_errors == 1 and lease.last_error_class == "network"

    run(body())


def test_token_budget_stops_forwarding(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, budget=Budget(max_tokens=1500)) as env:
            status, _ = await env.send("openai_chat", True)  # 1285 tokens: below the budget
            assert status == 200 and not env.lease.budget_exceeded.is_set()
            status, _ = await env.send("openai_chat", True)  # 2570: crosses it
            assert status == 200 and env.lease.budget_exceeded.is_set()
            assert "token budget" in env.lease.budget_reason
            status, data = await env.send("openai_chat", True)  # refused, never forwarded
            assert status == 429 and "budget exceeded" in json.loads(data)["error"]["message"]
            assert len(env.up.requests) == 2
            refused = env.records()[-1]
            assert refused.error_class == "budget" and refused.attempts == 0 and refused.usage.total == 0
            assert env.lease.provider_errors == 0 and env.lease.calls == 3

    run(body())


def test_usd_budget_counts_earlier_phases(tmp_path: Path) -> None:
    async def body() -> None:
        pricing = Pricing(input_per_mtok=1000, output_per_mtok=1000)  # 12 + 77 tokens -> $0.089
        async with proxy_env(tmp_path, provider="anthropic", pricing=pricing, budget=Budget(max_usd=0.1)) as env:
            lease = env.proxy.open_lease(trial_id="t1", phase=2, upstream=env.lease.upstream,
                                         budget=Budget(max_usd=0.1), calls_path=tmp_path / "p2.jsonl",
                                         spent=Usage(input_tokens=5), spent_usd=0.05)
            status, _ = await env.send("anthropic_messages", False, token=lease.token)
            assert status == 200 and lease.budget_exceeded.is_set() and "cost budget" in lease.budget_reason
            status, data = await env.send("anthropic_messages", False, token=lease.token)
            assert status == 429 and json.loads(data)["error"]["type"] == "rate_limit_error"
            spent = env.proxy.open_lease(trial_id="t1", phase=3, upstream=env.lease.upstream,
                                         budget=Budget(max_tokens=10), calls_path=tmp_path / "p3.jsonl",
                                         spent=Usage(output_tokens=10))
            assert spent.budget_exceeded.is_set()  # nothing left from the start

    run(body())


def test_limiter_bounds_upstream_concurrency(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path) as env:
            limiter = asyncio.Semaphore(1)
            lease = env.proxy.open_lease(trial_id="t1", phase=2, upstream=env.lease.upstream, budget=Budget(),
                                         calls_path=tmp_path / "p2.jsonl", limiter=limiter)
            env.up.queue.extend(Scripted(events=chat_stream(), chunk_delay=0.02) for _ in range(3))
            results = await asyncio.gather(*(env.send("openai_chat", True, token=lease.token) for _ in range(3)))
            assert [s for s, _ in results] == [200, 200, 200]
            assert env.up.max_active == 1 and lease.calls == 3

    run(body())


def test_real_key_never_reaches_agent_or_records(tmp_path: Path) -> None:
    async def body() -> None:
        seen = b""
        for wire in WIRES:
            async with proxy_env(tmp_path / wire, provider=PROVIDER[wire]) as env:
                leak = {"error": {"message": f"Incorrect API key provided: {REAL_KEY}", "code": 401}}
                env.up.queue.append(Scripted(status=401, body=leak))
                status, data = await env.send(wire, False)
                assert status == 401 and b"[REDACTED]" in data
                seen += data
                for stream in (True, False):
                    seen += (await env.send(wire, stream))[1]
                assert env.records()[0].error_class == "auth"
        assert REAL_KEY.encode() not in seen
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert REAL_KEY not in path.read_text(), path
        assert REAL_KEY not in repr(UpstreamTarget("openai", "http://x", REAL_KEY))

    run(body())


def test_agent_disconnect_mid_stream_is_recorded_not_a_provider_error(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path) as env:
            env.up.queue.append(Scripted(events=chat_stream() * 50, chunk_delay=0.02))
            path, headers, payload = agent_request("openai_chat", True, env.lease.token)
            resp = await env.http.post(env.base + path, data=payload, headers=headers)
            await resp.content.readuntil(b"\n\n")
            resp.close()  # the agent is killed
            for _ in range(200):
                if env.records():
                    break
                await asyncio.sleep(0.02)
            [rec] = env.records()
            assert rec.error_class == "client_closed" and env.lease.provider_errors == 0

    run(body())


def test_close_lease_cancels_hung_calls_and_frees_limiter(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, timeout=30) as env:
            limiter = asyncio.Semaphore(1)
            lease = env.proxy.open_lease(trial_id="t1", phase=2, upstream=env.lease.upstream, budget=Budget(),
                                         calls_path=tmp_path / "p2.jsonl", limiter=limiter)
            env.up.queue.append(Scripted(hang_s=20))
            pending = asyncio.ensure_future(env.send("openai_chat", True, token=lease.token))
            while not env.up.requests:
                await asyncio.sleep(0.01)
            assert limiter.locked()
            t0 = time.monotonic()
            env.proxy.close_lease(lease)  # the agent is gone; its hung call must not linger for 30 s
            while lease.calls == 0:
                await asyncio.sleep(0.01)
            assert time.monotonic() - t0 < 2 and not limiter.locked()
            rec = lease.calls_path.read_text()
            assert '"error_class":"client_closed"' in rec and lease.provider_errors == 0
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)

    run(body())


def test_stream_with_wrong_content_type_still_relayed_and_metered(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="anthropic") as env:
            frames = STREAMS["anthropic_messages"]()
            env.up.queue.append(Scripted(events=frames, headers={"Content-Type": "application/octet-stream"}))
            status, data = await env.send("anthropic_messages", True)
            assert status == 200 and data == b"".join(frames)
            assert env.records()[0].usage.model_dump() == EXPECTED["anthropic_messages"]

    run(body())


def test_upstream_401_403_count_as_auth_errors_but_the_proxys_own_401_does_not(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="anthropic") as env:
            status, _ = await env.send("anthropic_messages", False, token="stale-lease-token")
            assert status == 401 and env.records() == [] and env.lease.auth_errors == 0
            env.up.queue.append(Scripted(status=401, body={"error": {"message": "invalid x-api-key"}}))
            env.up.queue.append(Scripted(status=403, body={"error": {"message": "forbidden"}}))
            for _ in range(2):
                status, _ = await env.send("anthropic_messages", True)
                assert status in (401, 403)
            assert [r.attempts for r in env.records()] == [1, 1]  # never retried
            assert (env.lease.auth_errors, env.lease.ok_calls, env.lease.last_error_class) == (2, 0, "auth")
            status, _ = await env.send("anthropic_messages", True)
            assert status == 200 and (env.lease.auth_errors, env.lease.ok_calls) == (2, 1)

    run(body())
