"""Shared pieces of the replay's wire output: deterministic token counts, SSE framing, error bodies.

Invariants: token counts depend only on bytes: prompt = ceil(len(request body bytes) / 4), output =
ceil(len(UTF-8 output text or tool-call JSON arguments) / 4). Only the Anthropic wire reports a cache split:
a quarter of the prompt (rounded down) as cache_read_input_tokens, the rest as input_tokens; every other wire
reports the whole prompt as prompt/input tokens with 0 cached. Reasoning and cache-write are always 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shipbench.replay.conversation import Wire

DELTA_CHARS = 200  # characters per streamed text / arguments delta


def ceil_quarter(n: int) -> int:
    return (n + 3) // 4


def output_tokens(text: str) -> int:
    return ceil_quarter(len(text.encode("utf-8")))


@dataclass(frozen=True)
class TokenCounts:
    prompt: int  # the whole prompt, cache reads included
    cache_read: int
    output: int

    @property
    def uncached(self) -> int:
        return self.prompt - self.cache_read

    def normalised(self) -> dict[str, int]:
        """As shipbench records usage: input excludes cache reads."""
        return {
            "input_tokens": self.uncached,
            "output_tokens": self.output,
            "cache_read_tokens": self.cache_read,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
        }


# the request fields a chat template renders into the prompt (everything else: sampling, streaming, caps)
PROMPT_FIELDS = ("system", "instructions", "messages", "input", "contents", "systemInstruction", "tools")


def prompt_bytes(body: dict[str, Any]) -> bytes:
    """What a real server's prompt count depends on: the conversation and the tools, not `stream` or `max_tokens`
    (the persona servers count this, so the same conversation asked twice counts the same)."""
    fields = {k: body[k] for k in PROMPT_FIELDS if k in body}
    return json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def count_tokens(wire: Wire, body: bytes, output_text: str) -> TokenCounts:
    prompt = ceil_quarter(len(body))
    cache_read = prompt // 4 if wire == "anthropic" else 0
    return TokenCounts(prompt=prompt, cache_read=cache_read, output=output_tokens(output_text))


def pieces(text: str, size: int = DELTA_CHARS) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_GEMINI_ERRORS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(wire: Wire, status: int, message: str) -> dict[str, Any]:
    """An error response body in the shape the wire's real provider uses."""
    if wire == "anthropic":
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if wire == "gemini":
        return {"error": {"code": status, "message": message, "status": _GEMINI_ERRORS.get(status, "INTERNAL")}}
    kind = "rate_limit_exceeded" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}
