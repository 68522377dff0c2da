"""llama.cpp's `llama-server`: /health, /props (n_ctx, model path, chat template, build), /tokenize.

Invariants: as serving.base (total, base URL explicit); the served context is `/props`'s
`default_generation_settings.n_ctx` (newer builds also a top-level `n_ctx`), which is per slot.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from shipbench.serving.base import (
    TOKENIZE_TIMEOUT_S,
    ServedContext,
    ServingBackend,
    ServingCapabilities,
    ServingInfo,
    as_int,
    as_str,
    http_json,
    openai_model_entry,
    quantization_of,
    server_root,
    template_id,
    tokens_count,
)

JINJA_HINT = "start llama-server with --jinja (and the right --chat-template / --chat-template-file for the model)"


def props_n_ctx(props: Any) -> int | None:
    if not isinstance(props, dict):
        return None
    settings = props.get("default_generation_settings")
    from_settings = as_int(settings.get("n_ctx")) if isinstance(settings, dict) else None
    return from_settings or as_int(props.get("n_ctx"))


def props_info(info: ServingInfo, props: Any) -> ServingInfo:
    """`info` completed with what a llama.cpp /props answer states."""
    if not isinstance(props, dict):
        return info
    flags = dict(info.flags)
    slots = as_int(props.get("total_slots"))
    if slots:
        flags["total_slots"] = slots
    caps = props.get("chat_template_caps")
    if isinstance(caps, dict):
        flags.update({f"template_{k}": v for k, v in caps.items() if isinstance(v, bool)})
    model_file = as_str(props.get("model_path"))
    return info.model_copy(
        update={
            "version": as_str(props.get("build_info")) or info.version,
            "model_file": model_file or info.model_file,
            "quantization": quantization_of(model_file) or info.quantization,
            "format": "gguf" if model_file and model_file.lower().endswith(".gguf") else info.format,
            "n_ctx": props_n_ctx(props) or info.n_ctx,
            "chat_template": template_id(props.get("chat_template")) or info.chat_template,
            "flags": flags,
        }
    )


class LlamaCppBackend(ServingBackend):
    capabilities = ServingCapabilities(
        kind="llama.cpp",
        health_path="/health",
        models_path="/v1/models",
        context_source="GET /props",
        tokenizes=True,
        stream_usage=True,
        load_check=False,
        tool_call_hint=JINJA_HINT,
    )

    async def served_context(
        self, session: aiohttp.ClientSession, base_url: str, model: str, num_ctx: int | None = None
    ) -> ServedContext | None:
        result = await http_json(session, "GET", server_root(base_url) + "/props")
        served = props_n_ctx(result.data) if result.ok else None
        if served is None:
            return None
        return ServedContext(served, await self._trained_context(session, base_url, model), "GET /props")

    async def _trained_context(self, session: aiohttp.ClientSession, base_url: str, model: str) -> int | None:
        result = await http_json(session, "GET", server_root(base_url) + "/v1/models")
        entry = openai_model_entry(result.data, model) if result.ok else None
        meta = entry.get("meta") if entry else None
        return as_int(meta.get("n_ctx_train")) if isinstance(meta, dict) else None

    async def metadata(self, session: aiohttp.ClientSession, base_url: str, model: str) -> ServingInfo:
        info = ServingInfo(
            kind=self.capabilities.kind,
            model=model,
            native_context=await self._trained_context(session, base_url, model),
        )
        result = await http_json(session, "GET", server_root(base_url) + "/props")
        return props_info(info, result.data) if result.ok else info

    async def tokenize(self, session: aiohttp.ClientSession, base_url: str, model: str, text: str) -> int | None:
        result = await http_json(session, "POST", server_root(base_url) + "/tokenize", json_body={"content": text},
                                 timeout_s=TOKENIZE_TIMEOUT_S)
        return tokens_count(result.data) if result.ok else None
