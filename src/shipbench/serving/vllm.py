"""vLLM's OpenAI server: /health, /version, /v1/models with max_model_len, /tokenize.

Invariants: as serving.base; the served context is the model entry's `max_model_len`.
"""

from __future__ import annotations

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
)

TOOL_PARSER_HINT = "start vllm serve with --enable-auto-tool-choice and the model's --tool-call-parser"


class VllmBackend(ServingBackend):
    capabilities = ServingCapabilities(
        kind="vllm",
        health_path="/health",
        models_path="/v1/models",
        context_source="GET /v1/models max_model_len",
        tokenizes=True,
        stream_usage=True,
        load_check=False,
        tool_call_hint=TOOL_PARSER_HINT,
    )

    async def served_context(
        self, session: aiohttp.ClientSession, base_url: str, model: str, num_ctx: int | None = None
    ) -> ServedContext | None:
        result = await http_json(session, "GET", server_root(base_url) + "/v1/models")
        entry = openai_model_entry(result.data, model) if result.ok else None
        served = as_int(entry.get("max_model_len")) if entry else None
        return ServedContext(served, served, "GET /v1/models max_model_len") if served else None

    async def metadata(self, session: aiohttp.ClientSession, base_url: str, model: str) -> ServingInfo:
        root = server_root(base_url)
        version = await http_json(session, "GET", root + "/version")
        models = await http_json(session, "GET", root + "/v1/models")
        entry = openai_model_entry(models.data, model) if models.ok else None
        model_file = as_str(entry.get("root")) if entry else None
        return ServingInfo(
            kind=self.capabilities.kind,
            version=as_str(version.data.get("version")) if isinstance(version.data, dict) else None,
            model=as_str(entry.get("id")) if entry else model,
            model_file=model_file,
            quantization=quantization_of(model_file),
            n_ctx=as_int(entry.get("max_model_len")) if entry else None,
        )

    async def tokenize(self, session: aiohttp.ClientSession, base_url: str, model: str, text: str) -> int | None:
        body = {"model": model, "prompt": text, "add_special_tokens": False}
        result = await http_json(session, "POST", server_root(base_url) + "/tokenize", json_body=body,
                                 timeout_s=TOKENIZE_TIMEOUT_S)
        if not result.ok or not isinstance(result.data, dict):
            return None
        count = result.data.get("count")
        if isinstance(count, int) and not isinstance(count, bool):
            return count
        tokens = result.data.get("tokens")
        return len(tokens) if isinstance(tokens, list) else None
