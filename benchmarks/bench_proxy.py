"""Benchmark: per-call overhead of the metering proxy vs calling the upstream directly.

Run: .venv/bin/python benchmarks/bench_proxy.py [--calls 500] [--concurrency 1] [--wire openai_chat]
Both paths hit the same scripted upstream on 127.0.0.1 (tests/test_proxy_fakeupstream.py) with the
same keep-alive client; the proxied path also meters, prices and appends one llm_calls.jsonl line
per call. Prints latency p50/p99 for direct and proxied calls, streaming and not, and the overhead
(proxied minus direct, at the same percentile).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.test_proxy_fakeupstream import REAL_KEY, FakeUpstream, agent_request  # noqa: E402

from shipbench.config import Budget  # noqa: E402
from shipbench.proxy import MeteringProxy, UpstreamTarget  # noqa: E402

PROVIDER = {"openai_chat": "openrouter", "openai_responses": "openai", "anthropic_messages": "anthropic",
            "gemini": "google"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one(http: aiohttp.ClientSession, base: str, wire: str, stream: bool, token: str) -> float:
    path, headers, body = agent_request(wire, stream, token)
    t0 = time.perf_counter()
    async with http.post(base + path, data=body, headers=headers) as resp:
        await resp.read()
        assert resp.status == 200, resp.status
    return (time.perf_counter() - t0) * 1000.0


async def series(http: aiohttp.ClientSession, base: str, wire: str, stream: bool, token: str, calls: int,
                 concurrency: int) -> list[float]:
    sem = asyncio.Semaphore(concurrency)

    async def bounded() -> float:
        async with sem:
            return await one(http, base, wire, stream, token)

    for _ in range(20):  # warm-up: connections, JIT-free but caches and the price table
        await one(http, base, wire, stream, token)
    return list(await asyncio.gather(*(bounded() for _ in range(calls))))


async def main(calls: int, concurrency: int, wires: list[str]) -> None:
    up = FakeUpstream()
    await up.start()
    proxy = MeteringProxy()
    base = await proxy.start()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{calls} calls per row, concurrency {concurrency}; latency in ms")
        print(f"{'wire':<20}{'mode':<8}{'direct p50':>11}{'p99':>8}{'proxy p50':>11}{'p99':>8}"
              f"{'overhead p50':>14}{'p99':>8}{'calls/s':>9}")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for wire in wires:
                target = UpstreamTarget(PROVIDER[wire], up.url, REAL_KEY)
                lease = proxy.open_lease(trial_id="bench", phase=1, upstream=target, budget=Budget(),
                                         calls_path=Path(tmp) / f"{wire}.jsonl")
                for stream in (False, True):
                    direct = await series(http, up.url, wire, stream, REAL_KEY, calls, concurrency)
                    t0 = time.perf_counter()
                    proxied = await series(http, base, wire, stream, lease.token, calls, concurrency)
                    rate = calls / (time.perf_counter() - t0)
                    d50, d99, p50, p99 = pct(direct, .5), pct(direct, .99), pct(proxied, .5), pct(proxied, .99)
                    print(f"{wire:<20}{'stream' if stream else 'json':<8}{d50:>11.2f}{d99:>8.2f}{p50:>11.2f}"
                          f"{p99:>8.2f}{p50 - d50:>14.2f}{p99 - d99:>8.2f}{rate:>9.0f}")
                proxy.close_lease(lease)
                assert lease.calls == 2 * (calls + 20), lease.calls
        print(f"mean proxied latency {statistics.mean(proxied):.2f} ms (last row)")
    await proxy.stop()
    await up.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--wire", action="append", choices=sorted(PROVIDER), help="repeatable; default: all")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.concurrency, args.wire or sorted(PROVIDER)))
