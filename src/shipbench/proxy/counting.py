"""Token counts for an answered call whose upstream sent no usage (local servers often omit it when streaming).

Invariants: never raises, and every request it makes has COUNT_TIMEOUT_S; counts come from the server itself where
it can count (the prompt: the same request re-asked non-streamed for one token, whose usage is the server's own
prompt count; the answer: the generated text through the server's tokenize endpoint), else from the documented
estimate (characters / CHARS_PER_TOKEN); `source` says which. The re-ask is made only to a self-hosted server
(`serving` set on the model), never to a paid provider. See docs/local-models.md, "Metering without server usage".
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from shipbench.agents.base import Usage, WireApi
from shipbench.proxy.usage import Meter
from shipbench.store.records import UsageSource

CHARS_PER_TOKEN = 4  # the usual English/code average of BPE tokenizers; only used when the server cannot count
COUNT_TIMEOUT_S = 60.0
# the fields that make a chat request stream or cap it: replaced for the one-token re-ask
_STREAM_FIELDS = ("stream", "stream_options", "max_completion_tokens", "max_tokens", "n")

Tokenize = Callable[[str], Awaitable[int | None]]  # text -> the server's token count (None: cannot)


@dataclass(frozen=True)
class Counted:
    usage: Usage
    source: UsageSource


def estimate_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN) if chars > 0 else 0


def reask_body(body: bytes) -> bytes | None:
    """The request as a non-streamed one-token chat completion (None when the body is not a JSON object)."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    for key in _STREAM_FIELDS:
        obj.pop(key, None)
    obj["stream"] = False
    obj["max_tokens"] = 1
    return json.dumps(obj).encode("utf-8")


async def reask(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes] | None:
    """The same request asked whole for one token: (status, body), None when the server gave no HTTP answer."""
    again = reask_body(body)
    if again is None:
        return None
    sent = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "accept")}
    sent["Content-Type"] = "application/json"
    try:
        async with session.post(url, data=again, headers=sent,
                                timeout=aiohttp.ClientTimeout(total=COUNT_TIMEOUT_S)) as resp:
            return resp.status, await resp.read()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


async def server_prompt_tokens(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                               body: bytes) -> int | None:
    """The server's own prompt count for `body`, from a non-streamed one-token answer to the same request."""
    answer = await reask(session, url, headers, body)
    if answer is None or answer[0] >= 300:
        return None
    try:
        data: Any = json.loads(answer[1])
    except ValueError:
        return None
    usage = data.get("usage") if isinstance(data, dict) else None
    value = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def estimate(meter: Meter, body: bytes) -> Counted:
    """The estimate alone (no request): what a call cancelled while it was being counted records."""
    usage = Usage(input_tokens=estimate_tokens(len(body)), output_tokens=estimate_tokens(meter.output_chars))
    return Counted(usage, "estimate" if usage.total else "none")


async def count_missing(
    meter: Meter, *, wire: WireApi, body: bytes, self_hosted: bool,
    prompt_counter: Callable[[], Awaitable[int | None]] | None, tokenize: Tokenize | None,
) -> Counted:
    """Usage for an answered call that carried none: the server's counts where it gives them, else estimates."""
    prompt = await prompt_counter() if (self_hosted and wire == "openai_chat" and prompt_counter) else None
    text = meter.output_text
    output = await tokenize(text) if (tokenize is not None and text and not meter.output_clipped) else None
    if output is None and not text:
        output = 0 if prompt is not None else None
    exact = prompt is not None and output is not None
    prompt_n = prompt if prompt is not None else estimate_tokens(len(body))
    output_n = output if output is not None else estimate_tokens(meter.output_chars)
    if prompt_n == 0 and output_n == 0:
        return Counted(Usage(), "none")
    return Counted(Usage(input_tokens=prompt_n, output_tokens=output_n), "server_tokenizer" if exact else "estimate")
