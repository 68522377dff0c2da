"""The wire formats the proxy accepts: route table, credentials, error shapes, header hygiene.

Route table (method, path -> wire; metered calls are recorded and budgeted, the others are forwarded):
  POST /v1/chat/completions                               openai_chat         metered
  POST /v1/responses                                      openai_responses    metered
  POST /v1/messages          (query kept, e.g. ?beta=true) anthropic_messages  metered
  POST /v1/messages/count_tokens                          anthropic_messages  forwarded
  POST /v1beta/models/{model}:generateContent             gemini              metered
  POST /v1beta/models/{model}:streamGenerateContent       gemini (streaming)  metered
  POST /v1beta/models/{model}:countTokens                 gemini              forwarded
  GET  /v1/models                                         openai_chat         forwarded
Invariants: the agent's credentials (lease token) and hop-by-hop headers never go upstream; the real
key is only ever placed in a request header (never in a URL, so it cannot leak through error text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from shipbench.agents.base import WireApi


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    wire: WireApi
    metered: bool


_GEMINI = r"/v1beta/models/(?P<model>[^:/]+(?:/[^:/]+)?)"
ROUTES: tuple[Route, ...] = (
    Route("POST", re.compile(r"/v1/chat/completions"), "openai_chat", True),
    Route("POST", re.compile(r"/v1/responses"), "openai_responses", True),
    Route("POST", re.compile(r"/v1/messages"), "anthropic_messages", True),
    Route("POST", re.compile(r"/v1/messages/count_tokens"), "anthropic_messages", False),
    Route("POST", re.compile(_GEMINI + r":(?P<method>generateContent|streamGenerateContent)"), "gemini", True),
    Route("POST", re.compile(_GEMINI + r":countTokens"), "gemini", False),
    Route("GET", re.compile(r"/v1/models"), "openai_chat", False),
)


@dataclass(frozen=True)
class Matched:
    route: Route
    gemini_model: str | None = None
    gemini_stream: bool = False


def match_route(method: str, path: str) -> Matched | None:
    for route in ROUTES:
        m = route.pattern.fullmatch(path)
        if route.method == method and m is not None:
            groups = m.groupdict()
            return Matched(route, groups.get("model"), groups.get("method") == "streamGenerateContent")
    return None


def wire_of_path(path: str) -> WireApi:
    """Best guess of the wire for an error on an unknown path (its error shape)."""
    if path.startswith("/v1beta/"):
        return "gemini"
    if path.startswith("/v1/messages"):
        return "anthropic_messages"
    return "openai_chat"


def candidate_tokens(headers: Mapping[str, str], query: Mapping[str, str]) -> list[str]:
    """Every credential the agent may have sent: Bearer, x-api-key, x-goog-api-key, ?key=."""
    found: list[str] = []
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        found.append(auth[7:].strip())
    for name in ("x-api-key", "x-goog-api-key"):
        value = headers.get(name)
        if value:
            found.append(value.strip())
    key = query.get("key")
    if key:
        found.append(key)
    return found


_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def error_body(wire: WireApi, status: int, message: str, code: str) -> bytes:
    """An error in the shape the agent's SDK expects for its wire."""
    payload: dict[str, object]
    if wire == "anthropic_messages":
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        payload = {"type": "error", "error": {"type": kind, "message": message}}
    elif wire == "gemini":
        payload = {"error": {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "INTERNAL")}}
    else:
        payload = {"error": {"message": message, "type": code, "code": code, "param": None}}
    return json.dumps(payload).encode()


HOP_BY_HOP: frozenset[str] = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
})
_AGENT_CREDENTIALS: frozenset[str] = frozenset({"authorization", "x-api-key", "x-goog-api-key", "cookie"})
_RESPONSE_DROP: frozenset[str] = frozenset({"content-encoding", "set-cookie", "date", "server"})


def upstream_headers(agent_headers: Iterable[tuple[str, str]], provider: str, api_key: str | None,
                     extra: Mapping[str, str]) -> dict[str, str]:
    """Agent headers minus hop-by-hop and credentials, plus the provider's auth and the extra headers."""
    out: dict[str, str] = {}
    for name, value in agent_headers:
        low = name.lower()
        if low in HOP_BY_HOP or low in _AGENT_CREDENTIALS or low == "accept-encoding":
            continue
        out[name] = value
    out.update(extra)
    if api_key:
        if provider == "anthropic":
            out["x-api-key"] = api_key
        elif provider == "google":
            out["x-goog-api-key"] = api_key
        elif provider != "replay":
            out["Authorization"] = f"Bearer {api_key}"
    return out


def response_headers(upstream: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Upstream response headers safe to relay (the body is re-framed and decompressed by us)."""
    return {k: v for k, v in upstream if k.lower() not in HOP_BY_HOP and k.lower() not in _RESPONSE_DROP}


def upstream_url(base_url: str, path: str, query: Iterable[tuple[str, str]]) -> str:
    """base_url + path (+ query without `key`); a base ending in /v1 (or /v1beta) is not doubled."""
    base = base_url.rstrip("/")
    for version in ("/v1beta", "/v1"):
        if base.endswith(version) and path.startswith(version + "/"):
            base = base[: -len(version)]
            break
    kept = [(k, v) for k, v in query if k != "key"]
    return base + path + ("?" + urlencode(kept) if kept else "")


@dataclass(frozen=True)
class RequestInfo:
    model: str | None
    stream: bool
    body: bytes  # what goes upstream (rewritten only when needed)


def inspect_request(wire: WireApi, matched: Matched, body: bytes, model_override: str | None) -> RequestInfo:
    """Model and stream flag of a request; sets the model override and, for streamed openai_chat,
    `stream_options.include_usage` (without it the upstream sends no usage to meter)."""
    if wire == "gemini":
        return RequestInfo(model_override or matched.gemini_model, matched.gemini_stream, body)
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return RequestInfo(None, False, body)
    stream = data.get("stream") is True
    changed = False
    if model_override and data.get("model") != model_override:
        data["model"] = model_override
        changed = True
    if wire == "openai_chat" and stream:
        opts = data.get("stream_options")
        if not isinstance(opts, dict) or opts.get("include_usage") is not True:
            data["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
            changed = True
    model = data.get("model")
    out = json.dumps(data).encode() if changed else body
    return RequestInfo(model if isinstance(model, str) else None, stream, out)


def gemini_path(path: str, matched: Matched, model_override: str | None) -> str:
    if model_override and matched.gemini_model and matched.gemini_model != model_override:
        return path.replace(f"/models/{matched.gemini_model}:", f"/models/{model_override}:", 1)
    return path
