"""A trial's self-hosted server (a model with `serving` set): described, warmed up and checked around phases.

Invariants: only models with `serving` are touched (a cloud model costs no request here); every step is total (a
server that does not answer becomes a recorded problem, never an exception); the warmup loads the model the way
the agent's requests will (no per-request options: on Ollama a request with other options reloads the model, and
the OpenAI routes agents use cannot carry num_ctx), so a model served with another context than `num_ctx` is a
configuration problem found before phase 1, not a reload at every phase; a model found unloaded before a phase is
reloaded once, and one that stays so is the infrastructure's failure (InfraError), never the model's; warmup time
is recorded apart from the phases' wall time; a server's API key (`api_key_env`) is sent as a Bearer token.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipbench.config import ModelConfig
from shipbench.serving.base import ServingInfo, server_session
from shipbench.serving.registry import get_backend


@dataclass(frozen=True)
class ServerCheck:
    problem: str | None  # None: loaded as configured (or the server cannot tell)
    reloaded: bool = False  # it was not, and a warmup brought it back
    note: str = ""  # what was seen and done, for the trial record


def _base(model: ModelConfig) -> str | None:
    return model.upstream_url()


async def describe(model: ModelConfig, key: str | None = None) -> ServingInfo | None:
    """What the server says about itself and the model (recorded in trial.json)."""
    if model.serving is None or (base := _base(model)) is None:
        return None
    async with server_session(key) as session:
        return await get_backend(model.serving.kind).metadata(session, base, model.model)


async def warm_up(model: ModelConfig, key: str | None = None) -> tuple[float | None, str | None]:
    """(seconds, problem): load the model before phase 1 (None, None when nothing is to be warmed)."""
    serving = model.serving
    if serving is None or not serving.warmup or (base := _base(model)) is None:
        return None, None
    async with server_session(key) as session:
        result = await get_backend(serving.kind).warmup(session, base, model.model, keep_alive=serving.keep_alive)
    return round(result.seconds, 3), result.problem


async def check_loaded(model: ModelConfig, key: str | None = None) -> ServerCheck:
    """Before a phase: the model is still loaded (Ollama unloads idle models) with its context; an unloaded model
    is reloaded once; one served with another context than num_ctx is a problem at once (a reload would not fix
    it)."""
    serving = model.serving
    if serving is None or (base := _base(model)) is None:
        return ServerCheck(None)
    backend = get_backend(serving.kind)
    if not backend.capabilities.load_check:
        return ServerCheck(None)
    async with server_session(key) as session:
        problem = await backend.check_loaded(session, base, model.model, serving.num_ctx)
        if problem is None:
            return ServerCheck(None)
        if "not loaded" not in problem:
            return ServerCheck(f"{serving.kind} server: {problem}", note=problem)
        result = await backend.warmup(session, base, model.model, keep_alive=serving.keep_alive)
        again = await backend.check_loaded(session, base, model.model, serving.num_ctx)
    if again is None and result.problem is None:
        return ServerCheck(None, reloaded=True, note=f"{problem}; reloaded in {result.seconds:.1f} s")
    return ServerCheck(f"{serving.kind} server: {again or result.problem} (after a reload attempt; "
                       f"first seen: {problem})", note=problem)
