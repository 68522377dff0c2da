"""A REAL llama-cpp-python server (SmolLM2-135M) on loopback: it sends no usage in streamed answers, so the proxy
must count; and a real opencode trial against it ends with non-zero metered tokens that match the server.

Slow (the server is built by scripts/setup-llama.sh; skipped with that hint when it is not)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tests.local_llama import MODEL_ALIAS, llama_server
from tests.test_trial_support import write_task

from shipbench.agents.discovery import find_binary
from shipbench.agents.registry import get_adapter
from shipbench.config import Budget, SuiteConfig
from shipbench.proxy import MeteringProxy, UpstreamTarget
from shipbench.runner.plan import NullProgress
from shipbench.runner.suite import run_suite
from shipbench.store.records import LlmCallRecord

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
PROMPTS = (
    "Name three primary colours.",
    "Write one sentence about the sea.",
    "Count from one to ten in words.",
    "What is a cat? Answer in two sentences.",
)


def _body(prompt: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL_ALIAS, "max_tokens": 48, "temperature": 0, "seed": 7,
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": prompt}],
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def test_streamed_calls_are_metered_within_one_percent_of_the_server(tmp_path: Path) -> None:
    with llama_server(tmp_path) as server:

        async def go() -> tuple[list[LlmCallRecord], list[dict[str, int]]]:
            proxy = MeteringProxy()
            base = await proxy.start()
            calls = tmp_path / "llm_calls.jsonl"
            upstream = UpstreamTarget(provider="openai_compatible", base_url=server.root,
                                      serving_kind="llama-cpp-python")
            lease = proxy.open_lease(trial_id="t", phase=1, upstream=upstream, budget=Budget(), calls_path=calls)
            truth: list[dict[str, int]] = []
            try:
                async with aiohttp.ClientSession() as http:
                    for prompt in PROMPTS:
                        async with http.post(base + "/v1/chat/completions", json=_body(prompt, True),
                                             headers={"Authorization": f"Bearer {lease.token}"}) as resp:
                            raw = await resp.read()
                            assert resp.status == 200 and b'"usage"' not in raw  # the server really sends none
                        async with http.post(server.root + "/v1/chat/completions", json=_body(prompt, False)) as resp:
                            truth.append((await resp.json())["usage"])
            finally:
                proxy.close_lease(lease)
                await proxy.stop()
            return [LlmCallRecord.model_validate_json(line) for line in calls.read_text().splitlines()], truth

        records, truth = asyncio.run(go())
    assert len(records) == len(PROMPTS)
    assert all(r.usage_source == "server_tokenizer" and r.error_class is None for r in records)
    for rec, usage in zip(records, truth, strict=True):
        assert rec.usage.input_tokens == usage["prompt_tokens"]  # the server's own prompt count
    metered_out = sum(r.usage.output_tokens for r in records)
    server_out = sum(u["completion_tokens"] for u in truth)
    assert server_out > 0 and abs(metered_out - server_out) <= 0.01 * server_out, (metered_out, server_out)


class Recorder:
    """A loopback relay in front of the server that keeps each request body (to ask the server afterwards)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.bodies: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.relay)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def relay(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            self.bodies.append(json.loads(raw))
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")}
        async with aiohttp.ClientSession() as http, http.request(
            request.method, self.target + request.path_qs, data=raw or None, headers=headers
        ) as up:
            resp = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers.get("Content-Type", "")})
            with contextlib.suppress(ConnectionResetError):  # the proxy may hang up first (an agent killed)
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
            return resp

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def test_real_opencode_trial_against_the_real_server_meters_what_the_server_counts(tmp_path: Path) -> None:
    if not os.environ.get("SHIPBENCH_TOOLS_BIN") and (REPO / ".tools" / "npm" / "bin").is_dir():
        os.environ["SHIPBENCH_TOOLS_BIN"] = str(REPO / ".tools" / "npm" / "bin")
    if find_binary(get_adapter("opencode").capabilities, None) is None:
        pytest.skip("opencode CLI not installed (scripts/setup.sh installs it into .tools/npm)")
    with llama_server(tmp_path) as server:

        async def go() -> tuple[Any, list[dict[str, Any]], list[int]]:
            recorder = Recorder(server.root)
            url = await recorder.start()
            try:
                task = write_task(tmp_path / "task", {"hello": "Say hello in one short sentence. Do not use tools."})
                config = SuiteConfig.model_validate({
                    "name": "local", "task": str(task), "agents": [{"name": "opencode"}],
                    "models": [{"id": "smol", "model": MODEL_ALIAS, "provider": "openai_compatible", "base_url": url,
                                "serving": {"kind": "llama-cpp-python"}, "context_window": 8192,
                                "max_output_tokens": 256}],
                    "limits": {"idle_s": 240, "phase_wall_s": 420, "grace_s": 2},
                })
                (record,) = await run_suite(config, out=tmp_path / "out", progress=NullProgress(), environ={},
                                            monitor_interval_s=0.5, handle_signals=False)
                agent_bodies = [b for b in recorder.bodies if b.get("stream") is True]
                prompts: list[int] = []
                async with aiohttp.ClientSession() as http:
                    for body in agent_bodies:
                        again = {k: v for k, v in body.items() if k not in ("stream", "stream_options", "max_tokens")}
                        async with http.post(server.root + "/v1/chat/completions",
                                             json={**again, "max_tokens": 1}) as resp:
                            prompts.append((await resp.json())["usage"]["prompt_tokens"])
            finally:
                await recorder.stop()
            return record, agent_bodies, prompts

        record, bodies, server_prompts = asyncio.run(go())
    calls_file = next((tmp_path / "out").rglob("llm_calls.jsonl"))
    records = [LlmCallRecord.model_validate_json(line) for line in calls_file.read_text().splitlines()]
    answered = [r for r in records if r.status == 200 and r.error_class is None]
    assert answered, f"no answered call: {record.status} {record.status_reason}"
    phase = record.phases[0]
    assert phase.proxy_usage.input_tokens > 0 and phase.proxy_usage.output_tokens > 0
    assert all(r.usage_source == "server_tokenizer" for r in answered), [r.usage_source for r in answered]
    assert phase.usage_sources.get("server_tokenizer") == len(answered)
    # each call's prompt count is the server's own (records are in completion order, bodies in arrival order)
    assert sorted(r.usage.input_tokens for r in answered if r.stream) == sorted(server_prompts)
    assert bodies and all(b.get("max_tokens", 256) <= 256 for b in bodies)  # the model's cap reached opencode
    assert phase.decode_tokens_per_s is not None and phase.decode_tokens_per_s > 0
