"""The LLM stand-in: an OpenAI/OpenRouter chat-completions server on loopback that answers from a script and
records every request the app makes (method, path, headers, JSON body) as evidence.

Invariants: it only listens on 127.0.0.1; every request is recorded before it is answered, in arrival order,
and appended to the evidence file at once (nothing is lost if the validation is killed); a reply that is not
scripted is a normal one carrying a unique token, so the page can be searched for exactly that reply.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

ReplyKind = Literal["normal", "rate_limit", "server_error", "xss", "long"]
XSS_HOOK = "__shipbenchXss"  # the page-side function the payload calls when the browser executes it


@dataclass
class Captured:
    """One request the app sent to the stand-in and what it was answered."""

    n: int
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body (or the raw text when it was not JSON)
    reply_kind: str
    reply_status: int
    reply_text: str
    at: float

    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of an OpenAI-wire body ([] when there are none)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return [m for m in self.body["messages"] if isinstance(m, dict)]
        return []

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
            "reply_kind": self.reply_kind,
            "reply_status": self.reply_status,
            "reply_text": self.reply_text,
            "at": self.at,
        }


def message_text(message: dict[str, Any]) -> str:
    """A message's content as text (OpenAI content may be a string or a list of parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


@dataclass
class StandIn:
    """Start with `start()`; `script(kind)` queues the kind of the next reply; `requests` holds what came in."""

    evidence: Path
    run_token: str = field(default_factory=lambda: secrets.token_hex(4))
    requests: list[Captured] = field(default_factory=list)
    _queue: deque[ReplyKind] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "stand-in not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StandIn:
        self.evidence.parent.mkdir(parents=True, exist_ok=True)
        self.evidence.write_text("", encoding="utf-8")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="llm-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def script(self, *kinds: ReplyKind) -> None:
        with self._lock:
            self._queue.extend(kinds)

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, n: int) -> list[Captured]:
        with self._lock:
            return list(self.requests[n:])

    def reply_for(self, n: int, kind: ReplyKind) -> str:
        """The content of reply number `n` of `kind` (normal, xss, long): unique per run and per request."""
        token = f"sb{self.run_token}r{n}"
        if kind == "xss":
            return (
                f"Reply {token}: <img src=x onerror=\"{XSS_HOOK}('img-{token}')\">"
                f"<script>{XSS_HOOK}('script-{token}')</script> end"
            )
        if kind == "long":
            filler = " ".join(f"word{i}" for i in range(200))
            return f"Reply {token}: {filler}"[:1024]
        return f"Reply {token}: the answer is forty-two."

    def token_of(self, n: int) -> str:
        return f"sb{self.run_token}r{n}"

    def _record(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[Captured, bool]:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            n = len(self.requests) + 1
            is_chat = method == "POST" and path.rstrip("/").endswith("/chat/completions")
            kind: ReplyKind = self._queue.popleft() if (is_chat and self._queue) else "normal"
            status = {"rate_limit": 429, "server_error": 500}.get(kind, 200) if is_chat else 404
            text = self.reply_for(n, kind) if is_chat and status == 200 else ""
            captured = Captured(
                n, method, path, headers, body, kind if is_chat else "not_chat", status, text, time.time()
            )
            self.requests.append(captured)
            with self.evidence.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(captured.to_json()) + "\n")
        stream = isinstance(body, dict) and bool(body.get("stream"))
        return captured, stream


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            captured, stream = standin._record(self.command, self.path, dict(self.headers.items()), raw)
            model = captured.body.get("model", "") if isinstance(captured.body, dict) else ""
            if captured.reply_status == 404:
                self._json(404, {"error": {"message": f"no such endpoint {self.path}", "code": 404}})
            elif captured.reply_status == 429:
                self._json(429, {"error": {"message": "Rate limit exceeded: free-models-per-min", "code": 429}})
            elif captured.reply_status >= 500:
                self._json(500, {"error": {"message": "Internal Server Error", "code": 500}})
            elif stream:
                self._stream(captured, str(model))
            else:
                self._json(200, _completion(captured, str(model)))

        do_POST = _serve
        do_GET = _serve

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, captured: Captured, model: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            text = captured.reply_text
            pieces = [text[i : i + 40] for i in range(0, len(text), 40)] or [""]
            for i, piece in enumerate(pieces):
                chunk = {
                    "id": f"gen-{captured.n}",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": ({"role": "assistant"} if i == 0 else {}) | {"content": piece},
                            "finish_reason": None,
                        }
                    ],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            done = {
                "id": f"gen-{captured.n}",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": _usage(captured),
            }
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
            self.close_connection = True

    return Handler


def _usage(captured: Captured) -> dict[str, int]:
    prompt = sum(len(message_text(m)) for m in captured.messages()) // 4 + 1
    completion = len(captured.reply_text) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(captured: Captured, model: str) -> dict[str, Any]:
    return {
        "id": f"gen-{captured.n}",
        "object": "chat.completion",
        "created": int(captured.at),
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": captured.reply_text}}
        ],
        "usage": _usage(captured),
    }
