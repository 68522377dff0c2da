"""Usage extraction per wire, from a JSON body or from the stream's events (the proxy's truth).

Normalisation (recorded numbers are the upstream's own, only split differently):
  input_tokens + cache_read_tokens + cache_write_tokens = the whole prompt, on every wire;
  output_tokens = every billed output token, reasoning included; reasoning_tokens = that subset.
  openai_chat       prompt_tokens INCLUDES prompt_tokens_details.cached_tokens (and OpenRouter's
                    cache_write_tokens): input = prompt - cached - cache_write; output = completion_tokens
  openai_responses  input_tokens INCLUDES input_tokens_details.cached_tokens: input = input - cached;
                    output = output_tokens (includes output_tokens_details.reasoning_tokens)
  anthropic         input_tokens EXCLUDES cache_read_input_tokens and cache_creation_input_tokens: taken
                    as is; output = output_tokens (message_delta's value is cumulative: last one wins)
  gemini            promptTokenCount INCLUDES cachedContentTokenCount: input = prompt - cached;
                    candidatesTokenCount EXCLUDES thoughtsTokenCount: output = candidates + thoughts
                    (usageMetadata is cumulative over a stream: the last one wins)
Besides usage, a Meter keeps what is needed when the upstream sends none (local servers often do not):
the answer's text as generated (content, reasoning, tool names and arguments; capped at OUTPUT_TEXT_CAP) and
whether the answer finished (a finish reason, or the wire's end event), so an empty or cut stream is seen.
Invariant: feeding never raises, whatever the upstream sends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shipbench.agents.base import Usage, WireApi

OUTPUT_TEXT_CAP = 4 * 1024 * 1024  # characters of generated text kept for counting (beyond: estimate)


def _int(obj: Any, *path: str) -> int | None:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    if isinstance(obj, bool) or not isinstance(obj, int | float):
        return None
    return int(obj)


@dataclass
class Meter:
    wire: WireApi
    model: str | None = None
    provider: str | None = None  # who served it (OpenRouter's `provider`)
    upstream_cost: float | None = None  # OpenRouter's usage.cost
    seen_usage: bool = False
    raw: dict[str, int] = field(default_factory=dict)  # the upstream's own counters, by its field names
    finish_reason: str | None = None  # the last finish/stop reason the upstream gave
    finished: bool = False  # a finish reason or the wire's end-of-answer event was seen
    events: int = 0  # SSE data events (streamed) or JSON bodies fed
    output_parts: list[str] = field(default_factory=list)  # generated text, for counting without usage
    output_chars: int = 0
    output_clipped: bool = False

    def feed_sse_data(self, data: str) -> None:
        """One SSE event's data (`[DONE]` ends an OpenAI-style stream)."""
        self.events += 1
        if data.strip() == "[DONE]":
            self.finished = True
            return
        self.feed_json_text(data)

    @property
    def output_text(self) -> str:
        return "".join(self.output_parts)

    def _text(self, value: Any) -> None:
        if not isinstance(value, str) or not value:
            return
        room = OUTPUT_TEXT_CAP - self.output_chars
        if room <= 0:
            self.output_clipped = True
            return
        piece = value[:room]
        self.output_parts.append(piece)
        self.output_chars += len(piece)
        self.output_clipped = self.output_clipped or len(piece) < len(value)

    def _finish(self, reason: Any) -> None:
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
            self.finished = True

    def feed_json_text(self, text: str | bytes) -> None:
        try:
            obj = json.loads(text)
        except ValueError:
            return
        if isinstance(obj, dict):
            self.feed(obj)

    def feed(self, obj: dict[str, Any]) -> None:
        if self.wire == "openai_chat":
            self._openai_chat(obj)
        elif self.wire == "openai_responses":
            self._responses(obj)
        elif self.wire == "anthropic_messages":
            self._anthropic(obj)
        else:
            self._gemini(obj)

    def _model(self, value: Any) -> None:
        if isinstance(value, str) and value:
            self.model = value

    def _set(self, values: dict[str, int | None]) -> None:
        present = {k: v for k, v in values.items() if v is not None}
        if present:
            self.seen_usage = True
            self.raw.update(present)

    def _openai_chat(self, obj: dict[str, Any]) -> None:
        self._model(obj.get("model"))
        if isinstance(obj.get("provider"), str):
            self.provider = obj["provider"]
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict):
                self._chat_choice(choice)
        usage = obj.get("usage")
        if not isinstance(usage, dict):
            return
        self.raw.clear()
        self._set({
            "prompt_tokens": _int(usage, "prompt_tokens"),
            "completion_tokens": _int(usage, "completion_tokens"),
            "cached_tokens": _int(usage, "prompt_tokens_details", "cached_tokens"),
            "cache_write_tokens": _int(usage, "prompt_tokens_details", "cache_write_tokens"),
            "reasoning_tokens": _int(usage, "completion_tokens_details", "reasoning_tokens"),
        })
        cost = usage.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            self.upstream_cost = float(cost)

    def _chat_choice(self, choice: dict[str, Any]) -> None:
        self._finish(choice.get("finish_reason"))
        for key in ("delta", "message"):
            part = choice.get(key)
            if not isinstance(part, dict):
                continue
            for text_key in ("content", "reasoning_content", "reasoning"):
                self._text(part.get(text_key))
            calls = part.get("tool_calls")
            for call in calls if isinstance(calls, list) else []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    self._text(fn.get("name"))
                    self._text(fn.get("arguments"))

    def _responses(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if kind in ("response.output_text.delta", "response.function_call_arguments.delta",
                    "response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
            self._text(obj.get("delta"))
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self._finish(kind.removeprefix("response."))
        elif kind is None and isinstance(obj.get("output"), list):  # a whole (non-streamed) response
            self._responses_output(obj["output"])
            self._finish(obj.get("status"))
        resp = obj.get("response") if isinstance(obj.get("response"), dict) else obj
        if not isinstance(resp, dict):
            return
        self._model(resp.get("model"))
        usage = resp.get("usage")
        if not isinstance(usage, dict):
            return
        self.raw.clear()
        self._set({
            "input_tokens": _int(usage, "input_tokens"),
            "output_tokens": _int(usage, "output_tokens"),
            "cached_tokens": _int(usage, "input_tokens_details", "cached_tokens"),
            "reasoning_tokens": _int(usage, "output_tokens_details", "reasoning_tokens"),
        })
        cost = usage.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            self.upstream_cost = float(cost)

    def _responses_output(self, items: list[Any]) -> None:
        for item in items:
            if not isinstance(item, dict):
                continue
            self._text(item.get("name"))
            self._text(item.get("arguments"))
            content = item.get("content")
            for part in content if isinstance(content, list) else []:
                if isinstance(part, dict):
                    self._text(part.get("text"))

    def _anthropic(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if kind == "message_stop":
            self.finished = True
        elif kind == "content_block_delta" and isinstance(obj.get("delta"), dict):
            delta = obj["delta"]
            for key in ("text", "partial_json", "thinking"):
                self._text(delta.get(key))
        if kind == "message_delta" and isinstance(obj.get("delta"), dict):
            self._finish(obj["delta"].get("stop_reason"))
        if kind == "message":
            self._finish(obj.get("stop_reason"))
        if kind == "message_start" and isinstance(obj.get("message"), dict):
            obj = obj["message"]
            kind = "message"
        if kind == "message":
            self._model(obj.get("model"))
        if kind not in ("message", "message_delta"):
            return
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self._set({k: _int(usage, k) for k in (
                "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")})

    def _gemini(self, obj: dict[str, Any]) -> None:
        self._model(obj.get("modelVersion"))
        candidates = obj.get("candidates")
        for cand in candidates if isinstance(candidates, list) else []:
            if isinstance(cand, dict):
                self._finish(cand.get("finishReason"))
        meta = obj.get("usageMetadata")
        if not isinstance(meta, dict):
            return
        self.raw.clear()
        self._set({k: _int(meta, k) for k in (
            "promptTokenCount", "candidatesTokenCount", "cachedContentTokenCount", "thoughtsTokenCount")})

    def usage(self) -> Usage:
        r = self.raw.get
        if self.wire == "openai_chat":
            cached, write = r("cached_tokens", 0), r("cache_write_tokens", 0)
            return Usage(input_tokens=max(0, r("prompt_tokens", 0) - cached - write),
                         output_tokens=r("completion_tokens", 0), cache_read_tokens=cached,
                         cache_write_tokens=write, reasoning_tokens=r("reasoning_tokens", 0))
        if self.wire == "openai_responses":
            cached = r("cached_tokens", 0)
            return Usage(input_tokens=max(0, r("input_tokens", 0) - cached), output_tokens=r("output_tokens", 0),
                         cache_read_tokens=cached, reasoning_tokens=r("reasoning_tokens", 0))
        if self.wire == "anthropic_messages":
            return Usage(input_tokens=r("input_tokens", 0), output_tokens=r("output_tokens", 0),
                         cache_read_tokens=r("cache_read_input_tokens", 0),
                         cache_write_tokens=r("cache_creation_input_tokens", 0))
        cached, thoughts = r("cachedContentTokenCount", 0), r("thoughtsTokenCount", 0)
        return Usage(input_tokens=max(0, r("promptTokenCount", 0) - cached),
                     output_tokens=r("candidatesTokenCount", 0) + thoughts,
                     cache_read_tokens=cached, reasoning_tokens=thoughts)
