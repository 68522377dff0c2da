"""The one shape every serving backend has: typed capabilities and total async probes against a base URL.

Invariants: every method is total (a network error, a timeout, an HTTP error or a body that is not the JSON
expected gives None, an empty value or a problem string, never an exception); every method takes the server's
base URL explicitly, with or without a trailing `/v1` (`server_root` normalises it); nothing here holds or logs a
key: a server started with an API key is asked through a session whose default headers carry it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from shipbench.config import ServingKind

SHORT_TIMEOUT_S = 10.0  # health, model lists, metadata
TOKENIZE_TIMEOUT_S = 180.0  # a one-slot server (llama-cpp-python) tokenizes only after the requests queued before
WARMUP_TIMEOUT_S = 900.0  # loading a model from disk can take minutes
WARMUP_PROMPT = "Say OK."
_BODY_CLIP = 300


@dataclass(frozen=True)
class ServingCapabilities:
    """What a serving backend is and exposes, as data (preflight and the proxy's metering read this)."""

    kind: ServingKind
    health_path: str  # GET: answers 2xx when the server is up
    models_path: str  # GET: the ids it serves
    context_source: str | None  # where the served context is read ("GET /props"); None: preflight probes
    tokenizes: bool  # tokenize() counts with the server's own tokenizer
    stream_usage: bool  # a streamed chat answer carries usage when asked (stream_options.include_usage)
    load_check: bool  # check_loaded() can tell an unloaded model or a context drift
    tool_call_hint: str  # how to make the server return structured tool calls


class ServingInfo(BaseModel):
    """What a server says about itself and the model it serves (recorded in trial.json)."""

    model_config = ConfigDict(extra="forbid")

    kind: ServingKind
    version: str | None = None  # server version or build
    model: str | None = None  # the id as served
    model_file: str | None = None  # the weights file or the model's root path
    quantization: str | None = None
    format: str | None = None  # gguf, safetensors, ...
    n_ctx: int | None = None  # context the model is served with
    native_context: int | None = None  # the model's trained context (a ceiling)
    chat_template: str | None = None  # a template name, or `sha256:<12 hex>` of the template text
    tool_call_parser: str | None = None
    flags: dict[str, str | int | float | bool] = Field(default_factory=dict)  # further settings it exposes


@dataclass(frozen=True)
class ServedContext:
    served: int | None  # the context requests get now (None: not known)
    ceiling: int | None  # the model's own limit, when the server states it
    source: str  # where the numbers come from


@dataclass(frozen=True)
class WarmupResult:
    seconds: float
    problem: str | None  # None: the model answered


@dataclass(frozen=True)
class HttpResult:
    """One HTTP exchange, reduced to what the checks read."""

    status: int | None  # None: no HTTP answer (`error` says why)
    data: Any  # the body as JSON, or None
    text: str  # the body text, clipped
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def problem(self, what: str) -> str:
        """`what answered HTTP 404: <message>` / `what: connection refused`."""
        if self.status is None:
            return f"{what}: {self.error}"
        message = error_message(self.data) or self.text.strip()
        return f"{what} answered HTTP {self.status}" + (f": {message}" if message else "")


def server_session(key: str | None) -> aiohttp.ClientSession:
    """A session for asking a self-hosted server: its API key (a server started with one) as a Bearer token."""
    return aiohttp.ClientSession(trust_env=False, headers={"Authorization": f"Bearer {key}"} if key else None)


def server_root(base_url: str) -> str:
    """The server's root URL: no trailing slash, no trailing `/v1`."""
    root = base_url.strip().rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def describe_error(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g}s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without an answer"
    return f"{type(exc).__name__}: {exc}"


async def http_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = SHORT_TIMEOUT_S,
) -> HttpResult:
    """One request; never raises (the error is in the result)."""
    start = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 5.0))
    try:
        async with session.request(method, url, json=json_body, headers=dict(headers or {}), timeout=timeout) as resp:
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        return HttpResult(None, None, "", describe_error(exc, timeout_s), time.monotonic() - start)
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    return HttpResult(status, data, text[:_BODY_CLIP], None, time.monotonic() - start)


def error_message(data: Any) -> str | None:
    """The message of an error body of any common shape (OpenAI, llama.cpp, Anthropic, Gemini, Ollama)."""
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, str):
        return err[:_BODY_CLIP]
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return str(err["message"])[:_BODY_CLIP]
    if isinstance(data.get("message"), str):
        return str(data["message"])[:_BODY_CLIP]
    return None


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip()) or None
    return None


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def template_id(template: object) -> str | None:
    """A chat template as recorded: a short name as is, a template text as `sha256:<12 hex>`."""
    if not isinstance(template, str) or not template.strip():
        return None
    if len(template) <= 64 and re.fullmatch(r"[\w.:-]+", template):
        return template
    return "sha256:" + hashlib.sha256(template.encode("utf-8")).hexdigest()[:12]


_QUANT = re.compile(
    r"(?i)(?<![A-Za-z0-9])(I?Q[1-8](?:_[A-Z0-9]+)*|BF16|F16|F32|FP16|FP8|AWQ|GPTQ|MXFP4)(?![A-Za-z0-9])"
)


def quantization_of(name: str | None) -> str | None:
    """The quantization a weights file name states (`...-Q4_K_M.gguf` -> Q4_K_M), if any."""
    if not name:
        return None
    found = _QUANT.findall(name.rsplit("/", 1)[-1])
    return found[-1].upper() if found else None


def openai_model_ids(data: Any) -> list[str] | None:
    """`data[].id` of an OpenAI-style model list."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return None
    return [str(m["id"]) for m in dicts(data["data"]) if isinstance(m.get("id"), str)]


def openai_model_entry(data: Any, model: str) -> dict[str, Any] | None:
    entries = dicts(data.get("data")) if isinstance(data, dict) else []
    return next((m for m in entries if m.get("id") == model), entries[0] if len(entries) == 1 else None)


class ServingBackend:
    """A backend speaking the OpenAI-compatible API; subclasses add what their server exposes."""

    capabilities: ServingCapabilities

    async def health(self, session: aiohttp.ClientSession, base_url: str) -> str | None:
        """None when the server is up, else why not (one line)."""
        path = self.capabilities.health_path
        result = await http_json(session, "GET", server_root(base_url) + path)
        return None if result.ok else result.problem(f"GET {path}")

    async def list_models(self, session: aiohttp.ClientSession, base_url: str) -> list[str] | None:
        """The model ids the server serves (None when it cannot say)."""
        result = await http_json(session, "GET", server_root(base_url) + "/v1/models")
        return openai_model_ids(result.data) if result.ok else None

    async def served_context(
        self, session: aiohttp.ClientSession, base_url: str, model: str, num_ctx: int | None = None
    ) -> ServedContext | None:
        """The context the model is served with (None: the server does not say; preflight probes)."""
        return None

    async def metadata(self, session: aiohttp.ClientSession, base_url: str, model: str) -> ServingInfo:
        """What the server exposes about itself and the model (fields it does not expose stay None)."""
        return ServingInfo(kind=self.capabilities.kind, model=model)

    async def warmup(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        model: str,
        *,
        keep_alive: str = "-1",
        num_ctx: int | None = None,
        timeout_s: float = WARMUP_TIMEOUT_S,
    ) -> WarmupResult:
        """Load the model with one tiny non-streamed chat request (max_tokens 1); the seconds it took."""
        body = {
            "model": model,
            "messages": [{"role": "user", "content": WARMUP_PROMPT}],
            "max_tokens": 1,
            "stream": False,
        }
        result = await http_json(
            session, "POST", server_root(base_url) + "/v1/chat/completions", json_body=body, timeout_s=timeout_s
        )
        problem = None if result.ok else result.problem("warmup POST /v1/chat/completions")
        return WarmupResult(result.seconds, problem)

    async def check_loaded(
        self, session: aiohttp.ClientSession, base_url: str, model: str, num_ctx: int | None
    ) -> str | None:
        """None when the model is loaded as configured (or the server cannot tell), else the problem."""
        return None

    async def tokenize(self, session: aiohttp.ClientSession, base_url: str, model: str, text: str) -> int | None:
        """How many tokens `text` is for the server's own tokenizer (None when it has no tokenize endpoint)."""
        return None


def tokens_count(data: Any, key: str = "tokens") -> int | None:
    """len(data[key]) when it is a list (llama.cpp and llama-cpp-python tokenize answers)."""
    if isinstance(data, dict) and isinstance(data.get(key), list):
        return len(data[key])
    return None
