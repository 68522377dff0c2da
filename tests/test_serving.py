"""Serving backends against real loopback servers: each backend's parsing of its persona's shapes (ReplayServer),
LM Studio and llama-swap against small servers speaking their documented shapes, and totality (a closed port, an
HTML error page: None or a problem string, never an exception)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from shipbench.replay import HELLO_TRAJECTORY, ReplayServer, load_trajectory
from shipbench.replay.frames import ceil_quarter, prompt_bytes
from shipbench.serving import BACKENDS, get_backend, server_root
from shipbench.serving.base import ServingBackend, quantization_of, template_id
from shipbench.serving.ollama import default_ctx, full_name, keep_alive_value

T = TypeVar("T")


def with_persona(fn: Callable[[aiohttp.ClientSession, str, ReplayServer], Awaitable[T]], **kw: Any) -> T:
    async def go() -> T:
        server = ReplayServer(load_trajectory(HELLO_TRAJECTORY), **kw)
        url = await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                return await fn(session, url + "/v1", server)
        finally:
            await server.stop()

    return asyncio.run(go())


def test_server_root_normalises_v1() -> None:
    assert server_root("http://h:1/v1/") == server_root("http://h:1") == "http://h:1"
    assert server_root("http://h:1/api/v1") == "http://h:1/api"


def test_small_parsers() -> None:
    assert quantization_of("/models/Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf") == "Q4_K_M"
    assert quantization_of("/m/llama-3-8b.f16.gguf") == "F16" and quantization_of("plain") is None
    assert template_id("chatml") == "chatml" and (template_id("{% for m in messages %}") or "").startswith("sha256:")
    assert full_name("qwen3") == "qwen3:latest" and full_name("hf.co/x/y:Q4") == "hf.co/x/y:Q4"
    assert [default_ctx(v) for v in ("0.5.7", "0.6.7", "0.12.6", "0.15.5", None)] == [2048, 4096, 4096, None, None]
    assert (keep_alive_value("-1"), keep_alive_value("5m")) == (-1, "5m")


def test_llama_cpp_backend_reads_props_models_and_tokenize() -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "héllo " * 50}]})

    async def go(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> dict[str, Any]:
        b = get_backend("llama.cpp")
        async with session.post(url + "/chat/completions", data=body) as resp:
            usage = (await resp.json())["usage"]
        return {
            "health": await b.health(session, url),
            "models": await b.list_models(session, url),
            "ctx": await b.served_context(session, url, "m"),
            "info": await b.metadata(session, url, "m"),
            "tokens": await b.tokenize(session, url, "m", prompt_bytes(json.loads(body)).decode()),
            "usage": usage,
            "warm": await b.warmup(session, url, "m"),
            "loaded": await b.check_loaded(session, url, "m", None),
        }

    r = with_persona(go, persona="llama.cpp", n_ctx=8192, native_ctx=32768, served_models=["m"])
    assert r["health"] is None and r["models"] == ["m"]
    assert (r["ctx"].served, r["ctx"].ceiling, r["ctx"].source) == (8192, 32768, "GET /props")
    info = r["info"]
    assert (info.kind, info.version, info.model_file, info.quantization, info.format) == (
        "llama.cpp",
        "b6500-replay",
        "/models/m-Q4_K_M.gguf",
        "Q4_K_M",
        "gguf",
    )
    assert (info.n_ctx, info.native_context, info.flags["total_slots"]) == (8192, 32768, 1)
    assert info.chat_template is not None and info.chat_template.startswith("sha256:")
    assert r["tokens"] == r["usage"]["prompt_tokens"] == ceil_quarter(len(prompt_bytes(json.loads(body))))
    assert r["warm"].problem is None and r["warm"].seconds >= 0 and r["loaded"] is None


def test_llama_cpp_python_backend_has_no_context_and_its_own_tokenize() -> None:
    async def go(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> dict[str, Any]:
        b = get_backend("llama-cpp-python")
        stream = {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        async with session.post(url + "/chat/completions", json=stream) as resp:
            frames = await resp.text()
        return {
            "health": await b.health(session, url),
            "ctx": await b.served_context(session, url, "m"),
            "tokens": await b.tokenize(session, url, "m", "abcdefgh"),
            "info": await b.metadata(session, url, "m"),
            "frames": frames,
        }

    r = with_persona(go, persona="llama-cpp-python", served_models=["m"])
    assert r["health"] is None and r["ctx"] is None and r["tokens"] == 2
    assert r["info"].kind == "llama-cpp-python" and r["info"].flags == {"stream_usage": False}
    assert '"usage"' not in r["frames"] and r["frames"].endswith("data: [DONE]\n\n")
    assert not get_backend("llama-cpp-python").capabilities.stream_usage


def test_vllm_backend_reads_max_model_len_version_and_tokenize() -> None:
    async def go(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> dict[str, Any]:
        b = get_backend("vllm")
        return {
            "health": await b.health(session, url),
            "ctx": await b.served_context(session, url, "m"),
            "info": await b.metadata(session, url, "m"),
            "tokens": await b.tokenize(session, url, "m", "x" * 41),
        }

    r = with_persona(go, persona="vllm", n_ctx=16384, served_models=["m"])
    assert r["health"] is None and r["ctx"].served == 16384 and r["tokens"] == 11
    assert (r["info"].version, r["info"].n_ctx, r["info"].model_file) == ("0.10.1", 16384, "/models/m")


def test_ollama_backend_context_warmup_and_load_checks() -> None:
    async def go(session: aiohttp.ClientSession, url: str, server: ReplayServer) -> dict[str, Any]:
        b = get_backend("ollama")
        out: dict[str, Any] = {
            "health": await b.health(session, url),
            "models": await b.list_models(session, url),
            "default": await b.served_context(session, url, "m"),
            "asked": await b.served_context(session, url, "m", num_ctx=32768),
            "unloaded": await b.check_loaded(session, url, "m", 32768),
            "warm": await b.warmup(session, url, "m", keep_alive="-1", num_ctx=32768),
        }
        out["chat_body"] = server.requests[-1]
        out["loaded"] = await b.check_loaded(session, url, "m:latest", 32768)
        out["drift"] = await b.check_loaded(session, url, "m", 65536)
        out["info"] = await b.metadata(session, url, "m")
        out["tokens"] = await b.tokenize(session, url, "m", "abc")
        return out

    r = with_persona(go, persona="ollama", native_ctx=40960, served_models=["m"])
    assert r["health"] is None and r["models"] == ["m:latest"]
    assert (r["default"].served, r["default"].ceiling) == (4096, 40960)
    assert r["asked"].served == 32768 and r["asked"].source == "serving.num_ctx"
    assert "model m is not loaded" in r["unloaded"]
    assert r["warm"].problem is None
    assert r["chat_body"]["keep_alive"] == -1 and r["chat_body"]["options"] == {"num_predict": 1, "num_ctx": 32768}
    assert r["loaded"] is None
    assert "model m is loaded with a 32768-token context, not num_ctx 65536" in r["drift"]
    assert "OLLAMA_CONTEXT_LENGTH=65536" in r["drift"]
    info = r["info"]
    assert (info.version, info.quantization, info.format, info.n_ctx, info.native_context) == (
        "0.12.6",
        "Q4_K_M",
        "gguf",
        32768,
        40960,
    )
    assert info.flags["capabilities"] == "completion,tools" and r["tokens"] is None


def _closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


async def _everything(backend: ServingBackend, session: aiohttp.ClientSession, url: str) -> list[Any]:
    return [
        await backend.health(session, url),
        await backend.list_models(session, url),
        await backend.served_context(session, url, "m", num_ctx=None),
        await backend.metadata(session, url, "m"),
        (await backend.warmup(session, url, "m", timeout_s=5)).problem,
        await backend.check_loaded(session, url, "m", 4096),
        await backend.tokenize(session, url, "m", "text"),
    ]


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_every_method_is_total_against_a_closed_port(kind: str) -> None:
    async def go() -> list[Any]:
        async with aiohttp.ClientSession() as session:
            return await _everything(BACKENDS[kind], session, _closed_url())  # type: ignore[index]

    health, models, ctx, info, warm, loaded, tokens = asyncio.run(go())
    assert health is not None and "connection refused" in health
    assert (models, ctx, tokens) == (None, None, None)
    assert info.kind == kind and info.version is None
    assert warm is not None and "connection refused" in warm
    assert loaded is None or "did not answer" in loaded


async def _serve(
    routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]],
) -> tuple[web.AppRunner, str]:
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def test_every_method_is_total_against_html_error_pages() -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    async def go() -> list[list[Any]]:
        runner, url = await _serve([("*", "/{tail:.*}", html)])
        try:
            async with aiohttp.ClientSession() as session:
                return [await _everything(b, session, url) for b in BACKENDS.values()]
        finally:
            await runner.cleanup()

    for health, models, ctx, _info, warm, _loaded, tokens in asyncio.run(go()):
        assert health is not None and "HTTP 502" in health and warm is not None and "HTTP 502" in warm
        assert (models, ctx, tokens) == (None, None, None)


def test_lmstudio_backend_reads_the_rest_api() -> None:
    entry = {
        "id": "qwen2.5-7b-instruct",
        "object": "model",
        "type": "llm",
        "publisher": "lmstudio-community",
        "arch": "qwen2",
        "compatibility_type": "gguf",
        "quantization": "Q4_K_M",
        "state": "loaded",
        "max_context_length": 32768,
        "loaded_context_length": 4096,
    }

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [entry]})

    async def go() -> list[Any]:
        runner, url = await _serve([("GET", "/api/v0/models", models), ("GET", "/v1/models", models)])
        try:
            async with aiohttp.ClientSession() as session:
                b = get_backend("lmstudio")
                return [
                    await b.health(session, url),
                    await b.served_context(session, url, entry["id"]),
                    await b.metadata(session, url, entry["id"]),
                ]
        finally:
            await runner.cleanup()

    health, ctx, info = asyncio.run(go())
    assert health is None and (ctx.served, ctx.ceiling) == (4096, 32768)
    assert (info.quantization, info.format, info.n_ctx, info.native_context, info.flags["state"]) == (
        "Q4_K_M",
        "gguf",
        4096,
        32768,
        "loaded",
    )


def test_llama_swap_backend_reaches_the_upstream_llama_server() -> None:
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def running(request: web.Request) -> web.Response:
        return web.json_response({"running": [{"model": "m", "state": "ready"}]})

    async def props(request: web.Request) -> web.Response:
        assert request.match_info["model"] == "m"
        return web.json_response(
            {
                "default_generation_settings": {"n_ctx": 16384},
                "model_path": "/x/m-Q8_0.gguf",
                "build_info": "b6000",
                "total_slots": 2,
            }
        )

    async def tokenize(request: web.Request) -> web.Response:
        return web.json_response({"tokens": [1, 2, 3]})

    async def go() -> list[Any]:
        runner, url = await _serve(
            [
                ("GET", "/health", health),
                ("GET", "/running", running),
                ("GET", "/upstream/{model}/props", props),
                ("POST", "/upstream/{model}/tokenize", tokenize),
            ]
        )
        try:
            async with aiohttp.ClientSession() as session:
                b = get_backend("llama-swap")
                return [
                    await b.health(session, url),
                    await b.served_context(session, url, "m"),
                    await b.metadata(session, url, "m"),
                    await b.tokenize(session, url, "m", "abc"),
                ]
        finally:
            await runner.cleanup()

    up, ctx, info, tokens = asyncio.run(go())
    assert up is None and ctx.served == 16384 and tokens == 3
    assert (info.kind, info.version, info.quantization, info.n_ctx, info.flags) == (
        "llama-swap",
        "b6000",
        "Q8_0",
        16384,
        {"state": "ready", "total_slots": 2},
    )
