"""Ollama: /api/version, /api/tags, /api/show (details, parameters, template, model_info), /api/ps, /api/chat.

Invariants: as serving.base; a model name without a tag means `:latest`; the served context is the
configured num_ctx (the suite's, else the Modelfile's `num_ctx` parameter, else the context the loaded model
has in /api/ps, else Ollama's default: 2048 before 0.6.7, 4096 up to 0.15.4, unknown since 0.15.5, which picks
it from VRAM: 4096 below 24 GiB), the model's `<arch>.context_length` its ceiling; Ollama silently truncates a
longer prompt instead of refusing it, so no probe can find its context.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from shipbench.serving.base import (
    WARMUP_PROMPT,
    WARMUP_TIMEOUT_S,
    ServedContext,
    ServingBackend,
    ServingCapabilities,
    ServingInfo,
    WarmupResult,
    as_int,
    as_str,
    dicts,
    http_json,
    server_root,
    template_id,
)

OLD_DEFAULT_CTX, DEFAULT_CTX = 2048, 4096
VRAM_DEFAULT_SINCE = (0, 15, 5)  # from this version the default context depends on the GPU memory


def full_name(model: str) -> str:
    """`qwen3` -> `qwen3:latest` (Ollama's reading of a name without a tag)."""
    return model if ":" in model.rsplit("/", 1)[-1] else model + ":latest"


def same_model(a: str, b: str) -> bool:
    return full_name(a) == full_name(b)


def default_ctx(version: str | None) -> int | None:
    """Ollama's default num_ctx for a version (None: chosen from VRAM, or the version is unknown)."""
    parts = tuple(int(p) for p in re.findall(r"\d+", version or "")[:3])
    if not parts or parts >= VRAM_DEFAULT_SINCE:
        return None
    return OLD_DEFAULT_CTX if parts < (0, 6, 7) else DEFAULT_CTX


def parameter(parameters: object, name: str) -> str | None:
    """One value of /api/show's `parameters` text (`num_ctx 8192` lines)."""
    if not isinstance(parameters, str):
        return None
    for line in parameters.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == name:
            return value.strip().strip('"')
    return None


def native_context(model_info: object) -> int | None:
    if not isinstance(model_info, dict):
        return None
    arch = model_info.get("general.architecture")
    if isinstance(arch, str) and (n := as_int(model_info.get(f"{arch}.context_length"))):
        return n
    return next((as_int(v) for k, v in model_info.items() if str(k).endswith(".context_length") and as_int(v)), None)


def keep_alive_value(keep_alive: str) -> str | int:
    """Ollama reads a bare number as seconds (negative: forever) and a string as a Go duration ("5m")."""
    return int(keep_alive) if re.fullmatch(r"-?\d+", keep_alive.strip()) else keep_alive


class OllamaBackend(ServingBackend):
    capabilities = ServingCapabilities(
        kind="ollama",
        health_path="/api/version",
        models_path="/api/tags",
        context_source="serving.num_ctx / POST /api/show",
        tokenizes=False,
        stream_usage=True,
        load_check=True,
        tool_call_hint="use a model whose Ollama template supports tools (`ollama show` lists the tools capability)",
    )

    async def _version(self, session: aiohttp.ClientSession, root: str) -> str | None:
        result = await http_json(session, "GET", root + "/api/version")
        return as_str(result.data.get("version")) if result.ok and isinstance(result.data, dict) else None

    async def _show(self, session: aiohttp.ClientSession, root: str, model: str) -> dict[str, Any] | None:
        result = await http_json(session, "POST", root + "/api/show", json_body={"model": model})
        return result.data if result.ok and isinstance(result.data, dict) else None

    async def _running(
        self, session: aiohttp.ClientSession, root: str, model: str
    ) -> tuple[bool, dict[str, Any] | None]:
        """(the list could be read, the model's /api/ps entry)."""
        result = await http_json(session, "GET", root + "/api/ps")
        if not result.ok or not isinstance(result.data, dict):
            return False, None
        entries = dicts(result.data.get("models"))
        return True, next((m for m in entries if same_model(str(m.get("name") or m.get("model") or ""), model)), None)

    async def list_models(self, session: aiohttp.ClientSession, base_url: str) -> list[str] | None:
        result = await http_json(session, "GET", server_root(base_url) + "/api/tags")
        if not result.ok or not isinstance(result.data, dict) or not isinstance(result.data.get("models"), list):
            return None
        names = [as_str(m.get("name")) or as_str(m.get("model")) for m in dicts(result.data["models"])]
        return [n for n in names if n]

    async def served_context(
        self, session: aiohttp.ClientSession, base_url: str, model: str, num_ctx: int | None = None
    ) -> ServedContext | None:
        root = server_root(base_url)
        show = await self._show(session, root, model)
        ceiling = native_context(show.get("model_info")) if show else None
        if num_ctx:
            return ServedContext(num_ctx, ceiling, "serving.num_ctx")
        configured = as_int(parameter(show.get("parameters"), "num_ctx")) if show else None
        if configured:
            return ServedContext(configured, ceiling, "the Modelfile's num_ctx")
        _, running = await self._running(session, root, model)
        loaded = as_int(running.get("context_length")) if running else None
        if loaded:
            return ServedContext(loaded, ceiling, "GET /api/ps context_length")
        version = await self._version(session, root)
        if version is None and show is None:
            return None  # not an Ollama answering: nothing known
        default = default_ctx(version)
        if default is None:
            return ServedContext(None, ceiling, f"Ollama {version or '?'} picks its default context from VRAM")
        return ServedContext(default, ceiling, f"Ollama {version} default num_ctx")

    async def metadata(self, session: aiohttp.ClientSession, base_url: str, model: str) -> ServingInfo:
        root = server_root(base_url)
        show = await self._show(session, root, model) or {}
        details = show.get("details") if isinstance(show.get("details"), dict) else {}
        assert isinstance(details, dict)
        _, running = await self._running(session, root, model)
        flags: dict[str, str | int | float | bool] = {}
        for key in ("family", "parameter_size"):
            if isinstance(value := details.get(key), str) and value:
                flags[key] = value
        if isinstance(show.get("parameters"), str):
            flags["parameters"] = show["parameters"][:500]
        caps = show.get("capabilities")
        if isinstance(caps, list):
            flags["capabilities"] = ",".join(str(c) for c in caps)
        return ServingInfo(
            kind=self.capabilities.kind,
            version=await self._version(session, root),
            model=model,
            model_file=as_str(show.get("digest")) or (as_str(running.get("digest")) if running else None),
            quantization=as_str(details.get("quantization_level")),
            format=as_str(details.get("format")),
            n_ctx=(as_int(running.get("context_length")) if running else None)
            or as_int(parameter(show.get("parameters"), "num_ctx")),
            native_context=native_context(show.get("model_info")),
            chat_template=template_id(show.get("template")),
            flags=flags,
        )

    async def warmup(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        model: str,
        *,
        keep_alive: str = "-1",
        num_ctx: int | None = None,
        timeout_s: float = WARMUP_TIMEOUT_S,
    ) -> WarmupResult:
        options: dict[str, int] = {"num_predict": 1}
        if num_ctx:
            options["num_ctx"] = num_ctx
        body = {
            "model": model,
            "messages": [{"role": "user", "content": WARMUP_PROMPT}],
            "stream": False,
            "keep_alive": keep_alive_value(keep_alive),
            "options": options,
        }
        result = await http_json(
            session, "POST", server_root(base_url) + "/api/chat", json_body=body, timeout_s=timeout_s
        )
        return WarmupResult(result.seconds, None if result.ok else result.problem("warmup POST /api/chat"))

    async def check_loaded(
        self, session: aiohttp.ClientSession, base_url: str, model: str, num_ctx: int | None
    ) -> str | None:
        readable, running = await self._running(session, server_root(base_url), model)
        if not readable:
            return f"ollama at {base_url}: GET /api/ps did not answer: cannot tell whether {model} is loaded"
        if running is None:
            return f"ollama at {base_url}: model {model} is not loaded (unloaded after keep_alive, or evicted)"
        loaded = as_int(running.get("context_length"))
        if num_ctx and loaded and loaded != num_ctx:
            return (f"ollama at {base_url}: model {model} is loaded with a {loaded}-token context, not num_ctx "
                    f"{num_ctx} (requests on Ollama's OpenAI routes cannot set num_ctx: start the server with "
                    f"OLLAMA_CONTEXT_LENGTH={num_ctx} or set PARAMETER num_ctx {num_ctx} in the model's Modelfile)")
        return None
