"""OpenAI chat completions and Responses API output for one replay reply, as JSON or as SSE frames.

Invariants: a reply is either one tool call or one text, never both; usage appears in the non-stream body,
in the chat stream's final chunk only when the request asked for `stream_options.include_usage`, and in
the Responses stream's `response.completed` event; the chat stream always ends with `data: [DONE]`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from shipbench.replay.frames import TokenCounts, pieces, sse
from shipbench.replay.script import Reply


def _chat_usage(tokens: TokenCounts) -> dict[str, Any]:
    return {
        "prompt_tokens": tokens.prompt,
        "completion_tokens": tokens.output,
        "total_tokens": tokens.prompt + tokens.output,
        "prompt_tokens_details": {"cached_tokens": tokens.cache_read},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def chat_json(reply: Reply, model: str, tokens: TokenCounts) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_call:
        call = reply.tool_call
        message["tool_calls"] = [
            {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.args_json}}
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_call else "stop"}],
        "usage": _chat_usage(tokens),
    }


def chat_stream(reply: Reply, model: str, tokens: TokenCounts, *, include_usage: bool) -> list[bytes]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    frames = [chunk({"role": "assistant", "content": ""})]
    if reply.tool_call:
        call = reply.tool_call
        head = {"index": 0, "id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        frames.append(chunk({"tool_calls": [head]}))
        frames += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces(call.args_json)]
        frames.append(chunk({}, "tool_calls"))
    else:
        frames += [chunk({"content": p}) for p in pieces(reply.text)]
        frames.append(chunk({}, "stop"))
    if include_usage:
        frames.append(sse({**base, "choices": [], "usage": _chat_usage(tokens)}))
    frames.append(b"data: [DONE]\n\n")
    return frames


def _responses_usage(tokens: TokenCounts) -> dict[str, Any]:
    return {
        "input_tokens": tokens.prompt,
        "input_tokens_details": {"cached_tokens": tokens.cache_read},
        "output_tokens": tokens.output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens.prompt + tokens.output,
    }


def _output_item(reply: Reply, item_id: str, *, done: bool) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    if reply.tool_call:
        call = reply.tool_call
        return {
            "type": "function_call",
            "id": item_id,
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.args_json if done else "",
            "status": status,
        }
    content = [{"type": "output_text", "text": reply.text, "annotations": []}] if done else []
    return {"type": "message", "id": item_id, "role": "assistant", "status": status, "content": content}


def _response(
    resp_id: str, model: str, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "id": resp_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "usage": usage,
    }


def responses_json(reply: Reply, model: str, tokens: TokenCounts) -> dict[str, Any]:
    item = _output_item(reply, f"item_{uuid.uuid4().hex[:24]}", done=True)
    return _response(f"resp_{uuid.uuid4().hex[:24]}", model, "completed", [item], _responses_usage(tokens))


def _item_deltas(reply: Reply, item_id: str) -> list[tuple[str, dict[str, Any]]]:
    if reply.tool_call:
        args = reply.tool_call.args_json
        deltas = [
            ("response.function_call_arguments.delta", {"item_id": item_id, "output_index": 0, "delta": p})
            for p in pieces(args)
        ]
        return [
            *deltas,
            ("response.function_call_arguments.done", {"item_id": item_id, "output_index": 0, "arguments": args}),
        ]
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": "", "annotations": []}
    return [
        ("response.content_part.added", {**where, "part": part}),
        *[("response.output_text.delta", {**where, "delta": p}) for p in pieces(reply.text)],
        ("response.output_text.done", {**where, "text": reply.text}),
        ("response.content_part.done", {**where, "part": {**part, "text": reply.text}}),
    ]


def responses_stream(reply: Reply, model: str, tokens: TokenCounts) -> list[bytes]:
    resp_id, item_id = f"resp_{uuid.uuid4().hex[:24]}", f"item_{uuid.uuid4().hex[:24]}"
    done_item = _output_item(reply, item_id, done=True)
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": _response(resp_id, model, "in_progress", [], None)}),
        ("response.in_progress", {"response": _response(resp_id, model, "in_progress", [], None)}),
        ("response.output_item.added", {"output_index": 0, "item": _output_item(reply, item_id, done=False)}),
        *_item_deltas(reply, item_id),
        ("response.output_item.done", {"output_index": 0, "item": done_item}),
        (
            "response.completed",
            {"response": _response(resp_id, model, "completed", [done_item], _responses_usage(tokens))},
        ),
    ]
    return [sse({"type": kind, "sequence_number": n, **data}, kind) for n, (kind, data) in enumerate(events)]
