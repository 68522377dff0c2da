"""Preflight against real loopback servers: a ReplayServer impersonating llama.cpp, llama-cpp-python, Ollama and vLLM
(and their failures), a closed port; each failure is exactly one line; `shipbench preflight` and `shipbench run`
exit codes."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import shipbench.runner.command as command_mod
from shipbench.cli import app
from shipbench.config import ConfigError, SuiteConfig
from shipbench.preflight import PreflightReport, Timeouts, raise_for_failures, run_preflight
from shipbench.replay import HELLO_TRAJECTORY, Fault, ReplayServer, load_trajectory

NEED = 32768
FAST = Timeouts(short_s=5, request_s=10, probe_s=20)
runner = CliRunner()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def model_entry(url: str, kind: str | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": "local", "model": "m", "provider": "openai_compatible", "base_url": url + "/v1"}
    if kind:
        entry["serving"] = {"kind": kind, **extra.pop("serving", {})}
    entry.update(extra)
    return entry


def suite(models: list[dict[str, Any]], agents: tuple[str, ...] = ("opencode",)) -> SuiteConfig:
    return SuiteConfig.model_validate({"name": "s", "agents": [{"name": a} for a in agents], "models": models})


def preflight(
    server_kw: dict[str, Any] | None,
    kind: str | None = None,
    agents: tuple[str, ...] = ("opencode",),
    environ: dict[str, str] | None = None,
    **model_extra: Any,
) -> tuple[PreflightReport, list[str]]:
    """Preflight one model served by a ReplayServer started with `server_kw` (None: a closed port)."""

    async def go() -> tuple[PreflightReport, list[str]]:
        server = ReplayServer(load_trajectory(HELLO_TRAJECTORY), **server_kw) if server_kw is not None else None
        url = await server.start() if server else f"http://127.0.0.1:{closed_port()}"
        lines: list[str] = []
        try:
            config = suite([model_entry(url, kind, **model_extra)], agents)
            report = await run_preflight(
                config,
                min_context_tokens=NEED,
                agents=list(agents),
                models=config.models,
                environ=environ or {},
                progress=lines.append,
                timeouts=FAST,
            )
        finally:
            if server:
                await server.stop()
        return report, lines

    return asyncio.run(go())


def statuses(report: PreflightReport) -> dict[str, str]:
    return {c.id: c.status for c in report.models[0].checks}


def test_all_good_llama_cpp_passes_and_records_the_server() -> None:
    report, lines = preflight({"persona": "llama.cpp", "n_ctx": NEED, "served_models": ["m"]}, "llama.cpp")
    assert report.passed and report.failures == []
    assert statuses(report) == {
        "reachable": "passed",
        "model_listed": "passed",
        "wire:openai_chat": "passed",
        "tools:openai_chat": "passed",
        "context": "passed",
    }
    m = report.models[0]
    assert m.served_context == NEED and m.serving is not None
    assert (m.serving.kind, m.serving.n_ctx, m.serving.quantization) == ("llama.cpp", NEED, "Q4_K_M")
    assert len(lines) == 5 and all(line.startswith("preflight local: ") for line in lines)
    raise_for_failures(report)  # no error


def test_server_down_is_one_line() -> None:
    report, _ = preflight(None)
    assert len(report.failures) == 1
    assert report.failures[0].startswith("model local: cannot reach http://127.0.0.1:")
    assert report.failures[0].endswith("/v1 (connection refused)")
    assert statuses(report)["context"] == "skipped"
    report, _ = preflight(None, "llama.cpp")
    assert len(report.failures) == 1 and "the llama.cpp server at" in report.failures[0]
    assert report.failures[0].endswith("is not up (GET /health: connection refused)")


def test_model_not_listed_is_one_line() -> None:
    report, _ = preflight({"served_models": ["other-model"]})
    assert len(report.failures) == 1
    assert "'m' is not served at" in report.failures[0] and "(GET /v1/models lists: other-model)" in report.failures[0]


def test_codex_refused_without_responses_api_while_opencode_passes() -> None:
    kw = {"persona": "llama.cpp", "n_ctx": NEED, "served_models": ["m"], "disabled_wires": {"openai_responses"}}
    report, _ = preflight(kw, "llama.cpp", agents=("opencode", "codex"))
    (line,) = report.failures
    base = report.models[0].base_url
    assert line == (
        f"model local at {base}: this server cannot serve codex (no OpenAI Responses API: /v1/responses answered 404)"
    )
    assert statuses(report)["wire:openai_chat"] == "passed" and statuses(report)["tools:openai_chat"] == "passed"
    alone, _ = preflight(kw, "llama.cpp", agents=("opencode",))
    assert alone.passed


def test_too_small_context_from_llama_cpp_props() -> None:
    report, _ = preflight({"persona": "llama.cpp", "n_ctx": 8192, "served_models": ["m"]}, "llama.cpp")
    assert report.failures == ["model local serves a 8192-token context; task rails-chat needs at least 32768"]
    assert report.models[0].served_context == 8192


def test_too_small_context_found_by_the_probe_on_llama_cpp_python() -> None:
    small, _ = preflight({"persona": "llama-cpp-python", "n_ctx": 8192, "served_models": ["m"]}, "llama-cpp-python")
    (line,) = small.failures
    assert (
        "a request of about 32512 tokens was refused (POST /v1/chat/completions answered HTTP 400: This model's "
        "maximum context length is 8192 tokens." in line
    )
    assert line.endswith("it serves less than the 32768-token context task rails-chat needs")
    big, _ = preflight({"persona": "llama-cpp-python", "n_ctx": NEED, "served_models": ["m"]}, "llama-cpp-python")
    assert big.passed and "probe" in {c.id: c.detail for c in big.models[0].checks}["context"]


def test_context_probe_on_a_plain_server_with_the_context_fault() -> None:
    report, _ = preflight({"fault": Fault(kind="context"), "n_ctx": 4096, "served_models": ["m"]})
    (line,) = report.failures
    assert "exceeds the available context size" in line


def test_tools_as_text_is_one_line_with_the_llama_cpp_hint() -> None:
    kw = {"persona": "llama.cpp", "n_ctx": NEED, "served_models": ["m"], "fault": Fault(kind="tools_as_text")}
    report, _ = preflight(kw, "llama.cpp")
    (line,) = report.failures
    assert "(openai_chat): tool calls come back as text: this server/chat template cannot drive an agent" in line
    assert "--jinja" in line


def test_ollama_default_context_is_too_small_and_num_ctx_fixes_it() -> None:
    kw = {"persona": "ollama", "n_ctx": 4096, "served_models": ["m"]}
    small, _ = preflight(kw, "ollama")
    assert small.failures == [
        "model local serves a 4096-token context; task rails-chat needs at least 32768 (set serving.num_ctx)"
    ]
    ok, _ = preflight(kw, "ollama", serving={"num_ctx": NEED})
    assert ok.passed and ok.models[0].served_context == NEED
    assert ok.models[0].serving is not None and ok.models[0].serving.version


def test_vllm_max_model_len_too_small() -> None:
    report, _ = preflight({"persona": "vllm", "n_ctx": 16384, "served_models": ["m"]}, "vllm")
    assert report.failures == ["model local serves a 16384-token context; task rails-chat needs at least 32768"]


def test_context_window_claim_is_checked() -> None:
    report, _ = preflight(
        {"persona": "llama.cpp", "n_ctx": NEED, "served_models": ["m"]}, "llama.cpp", context_window=131072
    )
    assert report.failures == [
        "model local: context_window = 131072 in the suite, but it serves 32768 tokens (GET /props)"
    ]
    low, _ = preflight(
        {"persona": "llama.cpp", "n_ctx": NEED, "served_models": ["m"]}, "llama.cpp", context_window=8192
    )
    assert low.failures == ["model local: context_window = 8192 in the suite; task rails-chat needs at least 32768"]


def test_missing_key_env_is_one_line() -> None:
    report, _ = preflight({"served_models": ["m"]}, api_key_env="SHIPBENCH_TEST_LOCAL_KEY")
    assert report.failures == [
        "model local: $SHIPBENCH_TEST_LOCAL_KEY is not set (the key for provider openai_compatible)"
    ]


def test_refused_key_names_the_env_and_never_shows_the_key() -> None:
    secret = "sk-test-0123456789abcdef"
    kw = {"served_models": ["m"], "fault": Fault(kind="status", status=401, times=50)}
    report, lines = preflight(kw, api_key_env="SHIPBENCH_TEST_LOCAL_KEY", environ={"SHIPBENCH_TEST_LOCAL_KEY": secret})
    (line,) = report.failures
    assert (
        line == "model local: the key in $SHIPBENCH_TEST_LOCAL_KEY is refused (POST /v1/chat/completions "
        "answered HTTP 401)"
    )
    assert secret not in report.model_dump_json() and all(secret not in x for x in lines)


def test_replay_models_are_skipped_without_network() -> None:
    config = SuiteConfig.model_validate(
        {"name": "s", "agents": [{"name": "codex"}], "models": [{"id": "rp", "model": "r", "provider": "replay"}]}
    )
    report = asyncio.run(
        run_preflight(config, min_context_tokens=NEED, agents=["codex"], models=config.models, environ={})
    )
    assert report.passed and [(c.id, c.status, c.detail) for c in report.models[0].checks] == [
        ("replay", "skipped", "skipped (replay)")
    ]


def test_failures_raise_one_config_error_listing_each_line() -> None:
    report, _ = preflight(
        {"persona": "llama.cpp", "n_ctx": 8192, "served_models": ["m"], "disabled_wires": {"openai_responses"}},
        "llama.cpp",
        agents=("opencode", "codex"),
    )
    with pytest.raises(ConfigError) as exc:
        raise_for_failures(report)
    lines = str(exc.value).splitlines()
    assert lines[0] == "preflight failed (2 problems; --no-preflight skips it):"
    assert [x.strip() for x in lines[1:]] == report.failures


@contextmanager
def threaded_server(**kw: Any) -> Iterator[str]:
    """A ReplayServer on its own loop in a thread (for CLI tests, whose command runs its own asyncio.run)."""
    loop = asyncio.new_event_loop()
    server = ReplayServer(load_trajectory(HELLO_TRAJECTORY), **kw)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield server.base_url
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def write_suite(tmp: Path, url: str, kind: str = "llama.cpp", agent: str = 'name = "opencode"') -> Path:
    path = tmp / "suite.toml"
    path.write_text(
        f'name = "s"\n[sandbox]\nbackend = "none"\n[[agents]]\n{agent}\n\n[[models]]\nid = "local"\nmodel = "m"\n'
        f'provider = "openai_compatible"\nbase_url = "{url}/v1"\n[models.serving]\nkind = "{kind}"\n',
        encoding="utf-8",
    )
    return path


def test_cli_preflight_exit_codes_and_json(tmp_path: Path) -> None:
    with threaded_server(persona="llama.cpp", n_ctx=NEED, served_models=["m"]) as url:
        out = tmp_path / "pf.json"
        ok = runner.invoke(app, ["preflight", str(write_suite(tmp_path, url)), "--json", str(out)])
        assert ok.exit_code == 0, ok.output
        data = json.loads(out.read_text())
        assert data["models"][0]["served_context"] == NEED and data["models"][0]["serving"]["kind"] == "llama.cpp"
    with threaded_server(persona="llama.cpp", n_ctx=8192, served_models=["m"]) as url:
        bad = runner.invoke(app, ["preflight", str(write_suite(tmp_path, url))])
    assert bad.exit_code == 2, bad.output
    assert "model local serves a 8192-token context; task rails-chat needs at least 32768" in bad.output
    nothing = runner.invoke(app, ["preflight", str(write_suite(tmp_path, url)), "--model", "nope"])
    assert nothing.exit_code == 2 and "--model 'nope' matches no model" in nothing.output


def test_run_refuses_on_a_failed_preflight_and_no_preflight_skips_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    async def fake_run_suite(config: SuiteConfig, **kwargs: Any) -> list[Any]:
        calls.append(config.name)
        return []

    monkeypatch.setattr(command_mod, "run_suite", fake_run_suite)
    suite_file = write_suite(
        tmp_path, f"http://127.0.0.1:{closed_port()}", agent='name = "codex"\nbinary = "/bin/true"'
    )
    out = tmp_path / "out"
    refused = runner.invoke(app, ["run", str(suite_file), "--out", str(out)])
    assert refused.exit_code == 2, refused.output
    assert "error: preflight failed (1 problem; --no-preflight skips it):" in refused.output
    assert "is not up (GET /health: connection refused)" in refused.output
    assert calls == [] and not (out / "s").exists()  # no trial, no preflight.json: only the lock file
    skipped = runner.invoke(app, ["run", str(suite_file), "--out", str(out), "--no-preflight"])
    assert skipped.exit_code == 0, skipped.output
    assert calls == ["s"] and "preflight local" not in skipped.output


def test_run_writes_preflight_json_when_it_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_run_suite(config: SuiteConfig, **kwargs: Any) -> list[Any]:
        return []

    monkeypatch.setattr(command_mod, "run_suite", fake_run_suite)
    with threaded_server(persona="llama.cpp", n_ctx=NEED, served_models=["m"]) as url:
        suite_file = write_suite(tmp_path, url, agent='name = "opencode"\nbinary = "/bin/true"')
        result = runner.invoke(app, ["run", str(suite_file), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = PreflightReport.model_validate_json((tmp_path / "out" / "s" / "preflight.json").read_text())
    assert report.passed and report.models[0].served_context == NEED


def remote(provider: str, agent: str, model: str, served: list[str], key_env: str) -> tuple[PreflightReport, Any]:
    """A hosted provider's wire, answered by a ReplayServer standing in for it (base_url points at it)."""

    async def go() -> tuple[PreflightReport, Any]:
        server = ReplayServer(load_trajectory(HELLO_TRAJECTORY), served_models=served)
        url = await server.start()
        try:
            config = suite([{"id": "hosted", "model": model, "provider": provider, "base_url": url}], (agent,))
            report = await run_preflight(
                config,
                min_context_tokens=NEED,
                agents=[agent],
                models=config.models,
                environ={key_env: "secret-key-value"},
                timeouts=FAST,
            )
        finally:
            await server.stop()
        return report, server.requests

    return asyncio.run(go())


def test_anthropic_alias_of_a_dated_id_is_listed_and_messages_tools_pass() -> None:
    report, requests = remote(
        "anthropic", "claude", "claude-sonnet-4-5", ["claude-sonnet-4-5-20250929"], "ANTHROPIC_API_KEY"
    )
    assert report.passed, report.failures
    assert statuses(report) == {
        "reachable": "passed",
        "model_listed": "passed",
        "wire:anthropic_messages": "passed",
        "tools:anthropic_messages": "passed",
        "context": "skipped",
    }
    assert [r["path"] for r in requests if r["wire"]] == ["/v1/models", "/v1/messages", "/v1/messages"]


def test_gemini_wire_and_forced_function_call() -> None:
    report, requests = remote("google", "gemini", "gemini-2.5-pro", [], "GEMINI_API_KEY")
    assert report.passed, report.failures
    checks = {c.id: (c.status, c.detail) for c in report.models[0].checks}
    assert checks["model_listed"][0] == "skipped" and "HTTP 404" in checks["model_listed"][1]
    assert checks["wire:gemini"][0] == checks["tools:gemini"][0] == "passed"
    assert all("key=" not in r.get("query", "") for r in requests)  # the key goes in a header, never the URL


def test_provider_list_parsing_and_requests() -> None:
    from shipbench.preflight.requests import is_listed, listed_models, model_list_request

    google = {"models": [{"name": "models/gemini-2.5-pro", "inputTokenLimit": 1048576}]}
    assert listed_models("google", google) == (["gemini-2.5-pro"], {"gemini-2.5-pro": 1048576})
    router = {
        "data": [
            {"id": "qwen/qwen3-coder", "context_length": 262144},
            {"id": "x", "top_provider": {"context_length": 8192}},
        ]
    }
    assert listed_models("openrouter", router) == (["qwen/qwen3-coder", "x"], {"qwen/qwen3-coder": 262144, "x": 8192})
    assert is_listed("ollama", "qwen3", ["qwen3:latest"], ollama=True)
    assert not is_listed("anthropic", "claude-sonnet-4", ["claude-sonnet-4-5-20250929"])
    assert "Authorization" not in model_list_request("openrouter", "https://openrouter.ai/api", "k").headers
    req = model_list_request("google", "https://generativelanguage.googleapis.com", "k")
    assert req.headers == {"x-goog-api-key": "k"} and "k" not in req.url
    assert model_list_request("anthropic", "https://api.anthropic.com", "k").headers == {
        "anthropic-version": "2023-06-01",
        "x-api-key": "k",
    }
