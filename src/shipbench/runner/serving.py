"""A trial's self-hosted server (a model with `serving` set): described, warmed up and checked around phases.

Invariants: only models with `serving` are touched (a cloud model costs no request here); every step is total (a
server that does not answer becomes a recorded problem, never an exception); a model found unloaded or with another
context before a phase is reloaded once, and one that stays so is the infrastructure's failure (InfraError), never
the model's; warmup time is recorded apart from the phases' wall time.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from shipbench.config import ModelConfig
from shipbench.serving.base import ServingInfo
from shipbench.serving.registry import get_backend


@dataclass(frozen=True)
class ServerCheck:
    problem: str | None  # None: loaded as configured (or the server cannot tell)
    reloaded: bool = False  # it was not, and a warmup brought it back
    note: str = ""  # what was seen and done, for the trial record


def _base(model: ModelConfig) -> str | None:
    return model.upstream_url()


async def describe(model: ModelConfig) -> ServingInfo | None:
    """What the server says about itself and the model (recorded in trial.json)."""
    if model.serving is None or (base := _base(model)) is None:
        return None
    async with aiohttp.ClientSession(trust_env=False) as session:
        return await get_backend(model.serving.kind).metadata(session, base, model.model)


async def warm_up(model: ModelConfig) -> tuple[float | None, str | None]:
    """(seconds, problem): load the model before phase 1 (None, None when nothing is to be warmed)."""
    serving = model.serving
    if serving is None or not serving.warmup or (base := _base(model)) is None:
        return None, None
    async with aiohttp.ClientSession(trust_env=False) as session:
        result = await get_backend(serving.kind).warmup(session, base, model.model, keep_alive=serving.keep_alive,
                                                        num_ctx=serving.num_ctx)
    return round(result.seconds, 3), result.problem


async def check_loaded(model: ModelConfig) -> ServerCheck:
    """Before a phase: the model is still loaded with its context (Ollama unloads idle models and can reload them
    with another num_ctx); reload once when it is not."""
    serving = model.serving
    if serving is None or (base := _base(model)) is None:
        return ServerCheck(None)
    backend = get_backend(serving.kind)
    if not backend.capabilities.load_check:
        return ServerCheck(None)
    async with aiohttp.ClientSession(trust_env=False) as session:
        problem = await backend.check_loaded(session, base, model.model, serving.num_ctx)
        if problem is None:
            return ServerCheck(None)
        result = await backend.warmup(session, base, model.model, keep_alive=serving.keep_alive,
                                      num_ctx=serving.num_ctx)
        again = await backend.check_loaded(session, base, model.model, serving.num_ctx)
    if again is None and result.problem is None:
        return ServerCheck(None, reloaded=True, note=f"{problem}; reloaded in {result.seconds:.1f} s")
    return ServerCheck(f"{serving.kind} server: {again or result.problem} (after a reload attempt; "
                       f"first seen: {problem})", note=problem)
