"""llama-cpp-python's `python -m llama_cpp.server`: OpenAI routes plus /extras/tokenize; no /health, no props.

Invariants: as serving.base; it states no served context (preflight probes one), and its streamed answers
carry no usage whatever stream_options asks.
"""

from __future__ import annotations

import aiohttp

from shipbench.serving.base import (
    TOKENIZE_TIMEOUT_S,
    ServingBackend,
    ServingCapabilities,
    ServingInfo,
    http_json,
    quantization_of,
    server_root,
    tokens_count,
)

CHAT_FORMAT_HINT = (
    "start llama_cpp.server with a tool-capable --chat_format (e.g. chatml-function-calling) or the model's own "
    "template"
)


class LlamaCppPythonBackend(ServingBackend):
    capabilities = ServingCapabilities(
        kind="llama-cpp-python",
        health_path="/v1/models",
        models_path="/v1/models",
        context_source=None,
        tokenizes=True,
        stream_usage=False,
        load_check=False,
        tool_call_hint=CHAT_FORMAT_HINT,
    )

    async def metadata(self, session: aiohttp.ClientSession, base_url: str, model: str) -> ServingInfo:
        ids = await self.list_models(session, base_url)
        served = model if ids is None or model in ids else (ids[0] if len(ids) == 1 else model)
        return ServingInfo(
            kind=self.capabilities.kind,
            model=served,
            quantization=quantization_of(served),
            format="gguf",
            flags={"stream_usage": False},
        )

    async def tokenize(self, session: aiohttp.ClientSession, base_url: str, model: str, text: str) -> int | None:
        body = {"input": text, "model": model}
        result = await http_json(session, "POST", server_root(base_url) + "/extras/tokenize", json_body=body,
                                 timeout_s=TOKENIZE_TIMEOUT_S)
        return tokens_count(result.data) if result.ok else None
