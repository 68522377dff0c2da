"""Preflight: before the first trial, ask every selected model's upstream whether it can serve the run.

Per model (all models concurrently, each model's checks in order, one progress line per check):
  key          the key's environment variable is set (when the provider needs one)
  reachable    the serving backend's health (serving set), else the provider's model list answers at all
  model_listed the model id is in the provider's / server's list of models
  wire:<w>     each wire the selected agents speak answers a minimal request (a 404 names the agents refused)
  tools:<w>    a request with one forced tool gets a structured tool call back, not the call as text
  context      the served context (backend, provider list, or a probe of about min_context_tokens tokens on a
               local server) is at least the task's min_context_tokens; a suite's context_window is a claim
               that is checked, never taken as proof
Invariants: provider="replay" models are skipped (no network); a failed check's detail is one line naming the
model; checks after a failure that makes them meaningless (unreachable, key missing or refused, model not listed)
are recorded as skipped; no key value ever appears in a detail, a progress line or the report (redacted); every
network error becomes a failed check, never an exception.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from shipbench.agents.base import WireApi
from shipbench.agents.registry import get_adapter
from shipbench.config import ConfigError, ModelConfig, SuiteConfig
from shipbench.preflight.report import CheckStatus, ModelPreflight, PreflightCheck, PreflightReport, failure_message
from shipbench.preflight.requests import (
    WIRE_NAMES,
    answer_parts,
    cut_short,
    filler,
    is_listed,
    listed_models,
    looks_like_text_call,
    model_list_request,
    wire_request,
)
from shipbench.runner.keyhold import held_keys
from shipbench.serving.base import HttpResult, ServingBackend, error_message, http_json, server_session
from shipbench.serving.registry import get_backend

Progress = Callable[[str], None]
PROBE_MARGIN = 256  # tokens left for the chat template and the answer below min_context_tokens
WIRE_ORDER: tuple[WireApi, ...] = ("openai_chat", "openai_responses", "anthropic_messages", "gemini")


@dataclass(frozen=True)
class Timeouts:
    short_s: float = 15.0  # health, model lists, metadata
    request_s: float = 180.0  # one small completion (a cold local model loads first)
    probe_s: float = 600.0  # the context probe: a long prompt to prefill


@dataclass
class _Ctx:
    """What one model's checks share."""

    model: ModelConfig
    base: str
    key: str | None
    key_env: str | None
    agents_by_wire: dict[WireApi, list[str]]
    min_ctx: int
    task: str
    timeouts: Timeouts
    secrets: list[str]
    progress: Progress | None
    result: ModelPreflight
    backend: ServingBackend | None = None
    contexts: dict[str, int] = field(default_factory=dict)  # from the provider's model list

    @property
    def label(self) -> str:
        return f"model {self.model.id}"

    def add(self, check_id: str, status: CheckStatus, detail: str, started: float) -> PreflightCheck:
        check = PreflightCheck(
            id=check_id,
            status=status,
            detail=redact(detail, self.secrets),
            seconds=round(time.monotonic() - started, 3),
        )
        self.result.checks.append(check)
        if self.progress is not None:
            self.progress(progress_line(self.model.id, check))
        return check

    def skip_rest(self, checks: Sequence[str], why: str) -> None:
        for check_id in checks:
            self.add(check_id, "skipped", why, time.monotonic())


def progress_line(model_id: str, check: PreflightCheck) -> str:
    tail = f": {check.detail}" if check.detail else ""
    return f"preflight {model_id}: {check.id} {check.status} ({check.seconds:.1f}s){tail}"


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def selected(
    config: SuiteConfig, only_agent: str | None = None, only_model: str | None = None
) -> tuple[list[str], list[ModelConfig]]:
    """The agent names and models a run with these filters uses (as expand_plans selects them)."""
    agents = list(dict.fromkeys(a.name for a in config.agents if only_agent in (None, a.name)))
    models = [m for m in config.models if only_model is None or only_model in (m.id, m.model)]
    return agents, models


async def run_preflight(
    config: SuiteConfig,
    *,
    min_context_tokens: int,
    agents: Sequence[str],
    models: Sequence[ModelConfig],
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    timeouts: Timeouts | None = None,
) -> PreflightReport:
    """Check every model in `models` for the wires `agents` speak; never raises for what it finds (see
    raise_for_failures)."""
    env = {**os.environ, **held_keys()} if environ is None else dict(environ)
    wires: dict[WireApi, list[str]] = {}
    for name in agents:
        wires.setdefault(get_adapter(name).capabilities.wire_api, []).append(name)
    secrets = sorted({v for m in models if (k := m.key_env()) and (v := env.get(k))}, key=len, reverse=True)
    started, clock = datetime.now(UTC), time.monotonic()
    report = PreflightReport(
        suite=config.name,
        task=config.task,
        min_context_tokens=min_context_tokens,
        started_at=started.isoformat(timespec="seconds"),
    )
    results = await asyncio.gather(
        *(
            _check_model(m, env, wires, min_context_tokens, config.task, timeouts or Timeouts(), secrets, progress)
            for m in models
        )
    )
    report.models = list(results)
    report.seconds = round(time.monotonic() - clock, 3)
    return report


def raise_for_failures(report: PreflightReport) -> None:
    """A ConfigError listing every failed check, one line each (the CLI turns it into exit code 2)."""
    if not report.passed:
        raise ConfigError(failure_message(report))


async def _check_model(
    model: ModelConfig,
    env: Mapping[str, str],
    wires: dict[WireApi, list[str]],
    min_ctx: int,
    task: str,
    timeouts: Timeouts,
    secrets: list[str],
    progress: Progress | None,
) -> ModelPreflight:
    agents = sorted({a for names in wires.values() for a in names})
    result = ModelPreflight(
        model_id=model.id, model=model.model, provider=model.provider, base_url=model.upstream_url(), agents=agents
    )
    key_env = model.key_env()
    ctx = _Ctx(
        model,
        model.upstream_url() or "",
        env.get(key_env) if key_env else None,
        key_env,
        {w: wires[w] for w in WIRE_ORDER if w in wires},
        min_ctx,
        task,
        timeouts,
        secrets,
        progress,
        result,
        get_backend(model.serving.kind) if model.serving else None,
    )
    if model.provider == "replay":
        ctx.add("replay", "skipped", "skipped (replay)", time.monotonic())
        return result
    later = ["reachable", "model_listed", *(f"wire:{w}" for w in ctx.agents_by_wire), "context"]
    started = time.monotonic()
    if key_env and not ctx.key and (model.provider != "openai_compatible" or model.api_key_env):
        ctx.add("key", "failed", f"{ctx.label}: ${key_env} is not set (the key for provider {model.provider})", started)
        ctx.skip_rest(later, "skipped: no key")
        return result
    async with server_session(ctx.key if model.serving else None) as session:
        if not await _reachable_and_listed(ctx, session):
            return result
        if ctx.backend is not None:
            result.serving = await ctx.backend.metadata(session, ctx.base, model.model)
        passed = [w for w in ctx.agents_by_wire if await _wire(ctx, session, w)]
        for wire in passed:
            await _tools(ctx, session, wire)
        await _context(ctx, session, passed)
    return result


async def _reachable_and_listed(ctx: _Ctx, session: aiohttp.ClientSession) -> bool:
    rest = [*(f"wire:{w}" for w in ctx.agents_by_wire), "context"]
    started = time.monotonic()
    backend, model = ctx.backend, ctx.model
    if backend is not None:
        problem = await backend.health(session, ctx.base)
        if problem is not None:
            ctx.add(
                "reachable",
                "failed",
                f"{ctx.label}: the {backend.capabilities.kind} server at {ctx.base} is not up ({problem})",
                started,
            )
            ctx.skip_rest(["model_listed", *rest], "skipped: not reachable")
            return False
        ctx.add("reachable", "passed", f"{backend.capabilities.health_path} answered", started)
        started = time.monotonic()
        ids = await backend.list_models(session, ctx.base)
        listed = (
            None
            if ids is None
            else is_listed(model.provider, model.model, ids, ollama=backend.capabilities.kind == "ollama")
        )
        return _listed(ctx, ids, listed, f"GET {backend.capabilities.models_path}", started, rest)
    req = model_list_request(model.provider, ctx.base, ctx.key)
    answer = await http_json(session, req.method, req.url, headers=req.headers, timeout_s=ctx.timeouts.short_s)
    if answer.status is None:
        ctx.add("reachable", "failed", f"{ctx.label}: cannot reach {ctx.base} ({answer.error})", started)
        ctx.skip_rest(["model_listed", *rest], "skipped: not reachable")
        return False
    ctx.add("reachable", "passed", f"GET {req.path} answered HTTP {answer.status}", started)
    if answer.status in (401, 403):
        ctx.add("model_listed", "failed", _key_refused(ctx, answer, f"GET {req.path}"), started)
        ctx.skip_rest(rest, "skipped: key refused")
        return False
    parsed = listed_models(model.provider, answer.data) if answer.ok else None
    if parsed is not None:
        ctx.contexts = parsed[1]
    ids = parsed[0] if parsed else None
    listed = None if ids is None else is_listed(model.provider, model.model, ids)
    return _listed(ctx, ids, listed, f"GET {req.path}", started, rest, answer)


def _listed(
    ctx: _Ctx,
    ids: list[str] | None,
    listed: bool | None,
    what: str,
    started: float,
    rest: list[str],
    answer: HttpResult | None = None,
) -> bool:
    if ids is None:
        why = answer.problem(what) if answer is not None and not answer.ok else f"{what} gave no model list"
        ctx.add("model_listed", "skipped", f"cannot tell: {why}", started)
        return True
    if listed:
        ctx.add("model_listed", "passed", f"{ctx.model.model} is listed", started)
        return True
    shown = ", ".join(ids[:8]) + (f", ... ({len(ids)} in all)" if len(ids) > 8 else "")
    ctx.add(
        "model_listed",
        "failed",
        f"{ctx.label}: {ctx.model.model!r} is not served at {ctx.base} ({what} lists: {shown or 'nothing'})",
        started,
    )
    ctx.skip_rest(rest, "skipped: model not listed")
    return False


def _key_refused(ctx: _Ctx, answer: HttpResult, what: str) -> str:
    if ctx.key_env and ctx.key:
        return f"{ctx.label}: the key in ${ctx.key_env} is refused ({what} answered HTTP {answer.status})"
    return (
        f"{ctx.label} at {ctx.base}: {what} answered HTTP {answer.status}: the server wants a key "
        "(set api_key_env to the variable holding it)"
    )


def _agents(ctx: _Ctx, wire: WireApi) -> str:
    return ", ".join(ctx.agents_by_wire.get(wire, [])) or "its agents"


async def _post(
    ctx: _Ctx,
    session: aiohttp.ClientSession,
    wire: WireApi,
    timeout_s: float,
    *,
    text: str | None = None,
    tool: bool = False,
    max_tokens: int = 16,
) -> tuple[HttpResult, str]:
    kwargs = {"text": text} if text is not None else {}
    req = wire_request(
        wire, ctx.model.provider, ctx.base, ctx.model.model, ctx.key, tool=tool, max_tokens=max_tokens, **kwargs
    )
    answer = await http_json(session, req.method, req.url, json_body=req.body, headers=req.headers, timeout_s=timeout_s)
    return answer, req.path


async def _wire(ctx: _Ctx, session: aiohttp.ClientSession, wire: WireApi) -> bool:
    started = time.monotonic()
    answer, path = await _post(ctx, session, wire, ctx.timeouts.request_s)
    check_id = f"wire:{wire}"
    if answer.ok and answer_parts(wire, answer.data) is not None:
        ctx.add(check_id, "passed", f"POST {path} answered", started)
        return True
    at = f"{ctx.label} at {ctx.base}"
    if answer.status == 404 and not _model_missing(answer):
        detail = f"{at}: this server cannot serve {_agents(ctx, wire)} (no {WIRE_NAMES[wire]}: {path} answered 404)"
    elif answer.status in (401, 403):
        detail = _key_refused(ctx, answer, f"POST {path}")
    elif answer.ok:
        detail = f"{at}: POST {path} answered HTTP {answer.status} without a {WIRE_NAMES[wire]} answer"
    else:
        detail = f"{at}: " + answer.problem(f"POST {path}")
    ctx.add(check_id, "failed", detail, started)
    return False


def _model_missing(answer: HttpResult) -> bool:
    """A 404 about the model (OpenAI's model_not_found), not about the route."""
    message = (error_message(answer.data) or "").lower()
    err = answer.data.get("error") if isinstance(answer.data, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    return code == "model_not_found" or ("model" in message and ("not found" in message or "not exist" in message))


def _hint(ctx: _Ctx) -> str:
    return f"; {ctx.backend.capabilities.kind}: {ctx.backend.capabilities.tool_call_hint}" if ctx.backend else ""


TOOL_PROBE_TOKENS = 1024  # room for a reasoning model to think before it calls the tool


async def _tools(ctx: _Ctx, session: aiohttp.ClientSession, wire: WireApi) -> None:
    started = time.monotonic()
    answer, path = await _post(ctx, session, wire, ctx.timeouts.request_s, tool=True, max_tokens=TOOL_PROBE_TOKENS)
    at, check_id = f"{ctx.label} at {ctx.base} ({wire})", f"tools:{wire}"
    parts = answer_parts(wire, answer.data) if answer.ok else None
    if parts is None:
        detail = f"{at}: a request with one tool failed: " + answer.problem(f"POST {path}") + _hint(ctx)
        ctx.add(check_id, "failed", detail, started)
        return
    names, text = parts
    if names:
        ctx.add(check_id, "passed", f"structured tool call: {names[0]}", started)
        return
    if cut_short(wire, answer.data) and not looks_like_text_call(text):
        ctx.add(check_id, "skipped", f"inconclusive: the answer reached its {TOOL_PROBE_TOKENS}-token cap before "
                                     "any call (a reasoning model thinking first)", started)
        return
    if looks_like_text_call(text):
        detail = f"{at}: tool calls come back as text: this server/chat template cannot drive an agent{_hint(ctx)}"
    else:
        detail = (
            f"{at}: a forced tool call came back as plain text without a call: this server/chat template "
            f"cannot drive an agent{_hint(ctx)}"
        )
    ctx.add(check_id, "failed", detail, started)


async def _context(ctx: _Ctx, session: aiohttp.ClientSession, passed: list[WireApi]) -> None:
    started = time.monotonic()
    model, need, claim = ctx.model, ctx.min_ctx, ctx.model.context_window
    needs = f"task {ctx.task} needs at least {need}"
    if claim is not None and claim < need:
        ctx.add("context", "failed", f"{ctx.label}: context_window = {claim} in the suite; {needs}", started)
        return
    served, ceiling, source = None, None, ""
    if ctx.backend is not None and model.serving is not None:
        found = await ctx.backend.served_context(session, ctx.base, model.model, num_ctx=model.serving.num_ctx)
        if found is not None:
            served, ceiling, source = found.served, found.ceiling, found.source
    elif model.model in ctx.contexts or model.model.removeprefix("models/") in ctx.contexts:
        served = ctx.contexts.get(model.model) or ctx.contexts.get(model.model.removeprefix("models/"))
        source = f"{model.provider}'s model list"
    if served is None and ctx.backend is not None and ctx.backend.capabilities.kind == "ollama":
        why = source or "Ollama does not say"
        ctx.add(
            "context",
            "skipped",
            f"cannot tell ({why}; a longer prompt is truncated silently, not refused): set serving.num_ctx",
            started,
        )
        return
    if served is not None:
        ctx.result.served_context = served
        if served < need:
            hint = (
                " (set serving.num_ctx)"
                if ctx.backend is not None and ctx.backend.capabilities.kind == "ollama"
                else ""
            )
            ctx.add("context", "failed", f"{ctx.label} serves a {served}-token context; {needs}{hint}", started)
        elif claim is not None and claim > served:
            ctx.add(
                "context",
                "failed",
                f"{ctx.label}: context_window = {claim} in the suite, but it serves {served} tokens ({source})",
                started,
            )
        else:
            beyond = f", beyond the model's own {ceiling}" if ceiling and served > ceiling else ""
            ctx.add("context", "passed", f"{served} tokens ({source}{beyond})", started)
        return
    if model.provider != "openai_compatible":
        claimed = f"; context_window {claim} claimed, not verified" if claim else ""
        ctx.add("context", "skipped", f"{model.provider} does not state the context{claimed}", started)
        return
    await _probe(ctx, session, passed, started)


async def _probe(ctx: _Ctx, session: aiohttp.ClientSession, passed: list[WireApi], started: float) -> None:
    if not passed:
        ctx.add("context", "skipped", "no wire answered: nothing to probe with", started)
        return
    need = ctx.min_ctx
    size = max(need - PROBE_MARGIN, 1)
    wire = "openai_chat" if "openai_chat" in passed else passed[0]
    answer, path = await _post(ctx, session, wire, ctx.timeouts.probe_s, text=filler(size), max_tokens=1)
    if answer.ok and answer_parts(wire, answer.data) is not None:
        ctx.add("context", "passed", f"probe: a request of about {size} tokens was answered", started)
        return
    why = answer.problem(f"POST {path}") if not answer.ok else f"POST {path} answered HTTP {answer.status} empty"
    ctx.add(
        "context",
        "failed",
        f"{ctx.label} at {ctx.base}: a request of about {size} tokens was refused ({why}): "
        f"it serves less than the {need}-token context task {ctx.task} needs",
        started,
    )
