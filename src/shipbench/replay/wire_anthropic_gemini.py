"""Anthropic Messages and Gemini generateContent output for one replay reply, as JSON or as SSE frames.

Invariants: Anthropic usage splits the prompt into input_tokens + cache_read_input_tokens (see frames.py);
message_start reports output_tokens 1 and message_delta the final cumulative output count, as the real API
does. Every Gemini chunk carries cumulative usageMetadata, so the last chunk holds the totals.
"""

from __future__ import annotations

import uuid
from typing import Any

from shipbench.replay.frames import TokenCounts, output_tokens, pieces, sse
from shipbench.replay.script import Reply


def _anthropic_usage(tokens: TokenCounts, output: int) -> dict[str, Any]:
    return {
        "input_tokens": tokens.uncached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": tokens.cache_read,
        "output_tokens": output,
    }


def _anthropic_block(reply: Reply) -> dict[str, Any]:
    if reply.tool_call:
        call = reply.tool_call
        return {"type": "tool_use", "id": f"toolu_{call.call_id[5:]}", "name": call.name, "input": call.arguments}
    return {"type": "text", "text": reply.text}


def _stop_reason(reply: Reply) -> str:
    return "tool_use" if reply.tool_call else "end_turn"


def anthropic_json(reply: Reply, model: str, tokens: TokenCounts) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_anthropic_block(reply)],
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": _anthropic_usage(tokens, tokens.output),
    }


def anthropic_stream(reply: Reply, model: str, tokens: TokenCounts) -> list[bytes]:
    message: dict[str, Any] = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(tokens, 1),
    }
    block = _anthropic_block(reply)
    if reply.tool_call:
        start = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(reply.tool_call.args_json)]
    else:
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in pieces(reply.text)]
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": start},
        {"type": "ping"},
        *[{"type": "content_block_delta", "index": 0, "delta": d} for d in deltas],
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
            "usage": {"output_tokens": tokens.output},
        },
        {"type": "message_stop"},
    ]
    return [sse(e, str(e["type"])) for e in events]


def _gemini_usage(tokens: TokenCounts, output: int) -> dict[str, Any]:
    return {
        "promptTokenCount": tokens.prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": tokens.prompt + output,
    }


def _gemini_chunk(
    parts: list[dict[str, Any]], model: str, usage: dict[str, Any], resp_id: str, finish: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": resp_id}


def _gemini_call_part(reply: Reply) -> dict[str, Any]:
    assert reply.tool_call is not None
    return {"functionCall": {"name": reply.tool_call.name, "args": reply.tool_call.arguments}}


def gemini_json(reply: Reply, model: str, tokens: TokenCounts) -> dict[str, Any]:
    part = _gemini_call_part(reply) if reply.tool_call else {"text": reply.text}
    return _gemini_chunk([part], model, _gemini_usage(tokens, tokens.output), uuid.uuid4().hex[:24], True)


def gemini_stream(reply: Reply, model: str, tokens: TokenCounts) -> list[bytes]:
    resp_id = uuid.uuid4().hex[:24]
    if reply.tool_call:
        usage = _gemini_usage(tokens, tokens.output)
        return [sse(_gemini_chunk([_gemini_call_part(reply)], model, usage, resp_id, True))]
    texts = pieces(reply.text) or [""]
    frames: list[bytes] = []
    for n, text in enumerate(texts):
        last = n == len(texts) - 1
        so_far = tokens.output if last else output_tokens("".join(texts[: n + 1]))
        frames.append(sse(_gemini_chunk([{"text": text}], model, _gemini_usage(tokens, so_far), resp_id, last)))
    return frames
