"""llama-swap: a proxy starting one llama-server per model on demand; /health (or /running), /v1/models, and
/upstream/<model>/... which reaches the model's own llama-server (its /props, /tokenize).

Invariants: as serving.base; the served context comes from the upstream's /props, so it is only known once the
model runs (else None: preflight probes).
"""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from shipbench.serving.base import (
    TOKENIZE_TIMEOUT_S,
    ServedContext,
    ServingBackend,
    ServingCapabilities,
    ServingInfo,
    as_str,
    dicts,
    http_json,
    server_root,
    tokens_count,
)
from shipbench.serving.llamacpp import JINJA_HINT, props_info, props_n_ctx


class LlamaSwapBackend(ServingBackend):
    capabilities = ServingCapabilities(
        kind="llama-swap",
        health_path="/health",
        models_path="/v1/models",
        context_source="GET /upstream/<model>/props",
        tokenizes=True,
        stream_usage=True,
        load_check=False,
        tool_call_hint=JINJA_HINT + " (in the model's cmd of llama-swap's config)",
    )

    @staticmethod
    def _upstream(base_url: str, model: str, path: str) -> str:
        return f"{server_root(base_url)}/upstream/{quote(model, safe='')}{path}"

    async def health(self, session: aiohttp.ClientSession, base_url: str) -> str | None:
        root = server_root(base_url)
        result = await http_json(session, "GET", root + "/health")
        if result.ok:
            return None
        running = await http_json(session, "GET", root + "/running")
        return None if running.ok else result.problem("GET /health")

    async def served_context(
        self, session: aiohttp.ClientSession, base_url: str, model: str, num_ctx: int | None = None
    ) -> ServedContext | None:
        result = await http_json(session, "GET", self._upstream(base_url, model, "/props"))
        served = props_n_ctx(result.data) if result.ok else None
        return ServedContext(served, None, "GET /upstream/<model>/props") if served else None

    async def metadata(self, session: aiohttp.ClientSession, base_url: str, model: str) -> ServingInfo:
        info = ServingInfo(kind=self.capabilities.kind, model=model)
        running = await http_json(session, "GET", server_root(base_url) + "/running")
        data = running.data.get("running") if isinstance(running.data, dict) else None
        state = next((as_str(r.get("state")) for r in dicts(data) if r.get("model") == model), None)
        if state:
            info.flags["state"] = state
        props = await http_json(session, "GET", self._upstream(base_url, model, "/props"))
        return props_info(info, props.data) if props.ok else info

    async def tokenize(self, session: aiohttp.ClientSession, base_url: str, model: str, text: str) -> int | None:
        url = self._upstream(base_url, model, "/tokenize")
        result = await http_json(session, "POST", url, json_body={"content": text},
                                 timeout_s=TOKENIZE_TIMEOUT_S)
        return tokens_count(result.data) if result.ok else None
