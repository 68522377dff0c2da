"""The small requests preflight sends, per wire and per provider, and how it reads their answers.

Invariants: URLs and auth headers are built as the proxy builds them (proxy.wires.upstream_url / upstream_headers),
so a check passes only where the proxy's own forwarding would work; a key only ever goes in a header, never in a
URL; readers never raise on odd shapes (they return None / empty).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shipbench.agents.base import WireApi
from shipbench.proxy.wires import upstream_headers, upstream_url

ANTHROPIC_VERSION = "2023-06-01"
TOOL_NAME = "record_answer"
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "description": "The answer, one word."}},
    "required": ["answer"],
}
PING = "Reply with the single word OK."
TOOL_PROMPT = f'Call the {TOOL_NAME} tool with answer "OK". Do not answer in text.'
FILLER_WORD = " the"  # one token in common tokenizers, four bytes: ~one token for the replay's count too
WIRE_PATHS: dict[WireApi, str] = {
    "openai_chat": "/v1/chat/completions",
    "openai_responses": "/v1/responses",
    "anthropic_messages": "/v1/messages",
    "gemini": "/v1beta/models/{model}:generateContent",
}
WIRE_NAMES: dict[WireApi, str] = {
    "openai_chat": "OpenAI chat completions API",
    "openai_responses": "OpenAI Responses API",
    "anthropic_messages": "Anthropic Messages API",
    "gemini": "Gemini generateContent API",
}


@dataclass(frozen=True)
class Prepared:
    method: str
    url: str
    path: str  # for messages (no host, no query)
    headers: dict[str, str]
    body: dict[str, Any] | None = None


def auth_headers(provider: str, key: str | None, wire: WireApi | None = None) -> dict[str, str]:
    extra = {"anthropic-version": ANTHROPIC_VERSION} if provider == "anthropic" or wire == "anthropic_messages" else {}
    return upstream_headers([], provider, key, extra)


def model_list_request(provider: str, base_url: str, key: str | None) -> Prepared:
    """The provider's own list of models (OpenRouter's is public: no key is sent)."""
    if provider == "google":
        path, query = "/v1beta/models", [("pageSize", "1000")]
    elif provider == "anthropic":
        path, query = "/v1/models", [("limit", "1000")]
    else:
        path, query = "/v1/models", []
    headers = auth_headers(provider, None if provider == "openrouter" else key)
    return Prepared("GET", upstream_url(base_url, path, query), path, headers)


def listed_models(provider: str, data: Any) -> tuple[list[str], dict[str, int]] | None:
    """(ids, id -> context tokens where the list states it) of a model list answer."""
    if not isinstance(data, dict):
        return None
    if provider == "google":
        entries = data.get("models")
        if not isinstance(entries, list):
            return None
        ids, contexts = [], {}
        for m in entries:
            if isinstance(m, dict) and isinstance(m.get("name"), str):
                mid = m["name"].removeprefix("models/")
                ids.append(mid)
                if isinstance(m.get("inputTokenLimit"), int):
                    contexts[mid] = m["inputTokenLimit"]
        return ids, contexts
    entries = data.get("data")
    if not isinstance(entries, list):
        return None
    ids, contexts = [], {}
    for m in entries:
        if isinstance(m, dict) and isinstance(m.get("id"), str):
            ids.append(m["id"])
            top = m.get("top_provider")
            ctx = m.get("context_length") or (top.get("context_length") if isinstance(top, dict) else None)
            if isinstance(ctx, int) and not isinstance(ctx, bool) and ctx > 0:
                contexts[m["id"]] = ctx
    return ids, contexts


def is_listed(provider: str, model: str, ids: list[str], *, ollama: bool = False) -> bool:
    """Whether `model` is among `ids`: Ollama reads a name without a tag as `:latest`; Anthropic accepts an alias
    (`claude-sonnet-4-5`) of a dated id it lists (`claude-sonnet-4-5-20250929`)."""
    if model in ids:
        return True
    if ollama:

        def tagged(name: str) -> str:
            return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"

        return tagged(model) in {tagged(i) for i in ids}
    if provider == "anthropic":
        return any(i.startswith(model + "-") and i[len(model) + 1 :].isdigit() for i in ids)
    if provider == "google":
        return model.removeprefix("models/") in ids
    return False


def wire_request(
    wire: WireApi,
    provider: str,
    base_url: str,
    model: str,
    key: str | None,
    *,
    text: str = PING,
    tool: bool = False,
    max_tokens: int = 16,
) -> Prepared:
    """A minimal non-streamed request in `wire`: a short prompt, a few tokens; with `tool`, one tool, forced."""
    path = WIRE_PATHS[wire].format(model=model)
    body: dict[str, Any]
    if wire == "openai_chat":
        # OpenAI's reasoning models refuse `max_tokens` (400: use max_completion_tokens); other servers read max_tokens
        cap = "max_completion_tokens" if provider == "openai" else "max_tokens"
        body = {
            "model": model,
            "messages": [{"role": "user", "content": text}],
            cap: max_tokens,
            "stream": False,
        }
        if tool:
            fn = {"name": TOOL_NAME, "description": "Record the answer.", "parameters": TOOL_SCHEMA}
            body["tools"] = [{"type": "function", "function": fn}]
            body["tool_choice"] = {"type": "function", "function": {"name": TOOL_NAME}}
    elif wire == "openai_responses":
        body = {
            "model": model,
            "input": text,
            "max_output_tokens": max(max_tokens, 16),
            "stream": False,
            "store": False,
        }
        if tool:
            body["tools"] = [
                {"type": "function", "name": TOOL_NAME, "description": "Record the answer.", "parameters": TOOL_SCHEMA}
            ]
            body["tool_choice"] = {"type": "function", "name": TOOL_NAME}
    elif wire == "anthropic_messages":
        body = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}
        if tool:
            body["tools"] = [{"name": TOOL_NAME, "description": "Record the answer.", "input_schema": TOOL_SCHEMA}]
            body["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
    else:
        body = {
            "contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": {"maxOutputTokens": max_tokens},
        }
        if tool:
            decl = {"name": TOOL_NAME, "description": "Record the answer.", "parameters": TOOL_SCHEMA}
            body["tools"] = [{"functionDeclarations": [decl]}]
            body["toolConfig"] = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [TOOL_NAME]}}
    headers = {"Content-Type": "application/json", **auth_headers(provider, key, wire)}
    return Prepared("POST", upstream_url(base_url, path, []), path, headers, body)


def cut_short(wire: WireApi, data: Any) -> bool:
    """The answer stopped at its token cap (a reasoning model can spend a small cap before it calls anything)."""
    if not isinstance(data, dict):
        return False
    if wire == "openai_chat":
        choices = _dicts(data.get("choices"))
        return bool(choices) and choices[0].get("finish_reason") == "length"
    if wire == "openai_responses":
        return data.get("status") == "incomplete"
    if wire == "anthropic_messages":
        return data.get("stop_reason") == "max_tokens"
    candidates = _dicts(data.get("candidates"))
    return bool(candidates) and candidates[0].get("finishReason") == "MAX_TOKENS"


def filler(tokens: int) -> str:
    """A prompt of about `tokens` tokens."""
    return PING + FILLER_WORD * max(tokens, 0)


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def answer_parts(wire: WireApi, data: Any) -> tuple[list[str], str] | None:
    """(names of the structured tool calls, the text) of a non-streamed answer; None: not an answer of `wire`."""
    if not isinstance(data, dict):
        return None
    names: list[str] = []
    texts: list[str] = []
    if wire == "openai_chat":
        choices = _dicts(data.get("choices"))
        if not choices:
            return None
        message = choices[0].get("message")
        if not isinstance(message, dict):
            return None
        names = [
            str(c["function"].get("name"))
            for c in _dicts(message.get("tool_calls"))
            if isinstance(c.get("function"), dict)
        ]
        content = message.get("content")
        texts = [content] if isinstance(content, str) else [json.dumps(content)] if content else []
    elif wire == "openai_responses":
        output = data.get("output")
        if not isinstance(output, list):
            return None
        for item in _dicts(output):
            if item.get("type") == "function_call":
                names.append(str(item.get("name")))
            for part in _dicts(item.get("content")):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
    elif wire == "anthropic_messages":
        content = data.get("content")
        if not isinstance(content, list):
            return None
        names = [str(b.get("name")) for b in _dicts(content) if b.get("type") == "tool_use"]
        texts = [str(b.get("text")) for b in _dicts(content) if b.get("type") == "text"]
    else:
        candidates = _dicts(data.get("candidates"))
        if not candidates:
            return None
        parts = _dicts(
            candidates[0].get("content", {}).get("parts") if isinstance(candidates[0].get("content"), dict) else None
        )
        names = [str(p["functionCall"].get("name")) for p in parts if isinstance(p.get("functionCall"), dict)]
        texts = [str(p["text"]) for p in parts if isinstance(p.get("text"), str)]
    return names, "\n".join(texts)


def looks_like_text_call(text: str) -> bool:
    """Assistant text that holds the tool call (a server without a tool-call parser for the model's format)."""
    low = text.lower()
    return "<tool_call>" in low or TOOL_NAME in text or ('"arguments"' in text and '"name"' in text)
