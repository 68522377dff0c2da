"""LM Studio's server: OpenAI routes plus the REST API /api/v0/models (loaded and maximum context, quantization).

Invariants: as serving.base; the served context is `loaded_context_length` (present while the model is
loaded), the ceiling `max_context_length`.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from shipbench.serving.base import (
    ServedContext,
    ServingBackend,
    ServingCapabilities,
    ServingInfo,
    as_int,
    as_str,
    http_json,
    openai_model_entry,
    server_root,
)


class LmStudioBackend(ServingBackend):
    capabilities = ServingCapabilities(
        kind="lmstudio",
        health_path="/v1/models",
        models_path="/v1/models",
        context_source="GET /api/v0/models loaded_context_length",
        tokenizes=False,
        stream_usage=True,
        load_check=False,
        tool_call_hint="load the model in LM Studio with a tool-capable prompt template",
    )

    async def _entry(self, session: aiohttp.ClientSession, base_url: str, model: str) -> dict[str, Any] | None:
        result = await http_json(session, "GET", server_root(base_url) + "/api/v0/models")
        return openai_model_entry(result.data, model) if result.ok else None

    async def served_context(
        self, session: aiohttp.ClientSession, base_url: str, model: str, num_ctx: int | None = None
    ) -> ServedContext | None:
        entry = await self._entry(session, base_url, model)
        if entry is None:
            return None
        served, ceiling = as_int(entry.get("loaded_context_length")), as_int(entry.get("max_context_length"))
        if served is None and ceiling is None:
            return None
        return ServedContext(served, ceiling, "GET /api/v0/models")

    async def metadata(self, session: aiohttp.ClientSession, base_url: str, model: str) -> ServingInfo:
        entry = await self._entry(session, base_url, model)
        if entry is None:
            return ServingInfo(kind=self.capabilities.kind, model=model)
        flags: dict[str, str | int | float | bool] = {
            k: v for k in ("state", "arch", "publisher", "type") if isinstance(v := entry.get(k), str)
        }
        return ServingInfo(
            kind=self.capabilities.kind,
            model=as_str(entry.get("id")) or model,
            quantization=as_str(entry.get("quantization")),
            format=as_str(entry.get("compatibility_type")),
            n_ctx=as_int(entry.get("loaded_context_length")),
            native_context=as_int(entry.get("max_context_length")),
            flags=flags,
        )
