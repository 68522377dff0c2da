"""Retry policy and error classes for upstream calls.

Invariants: only 429, 5xx, connection errors and timeouts are retried; a delay never exceeds
`max_delay_s`, whatever Retry-After says; `classify_*` is total (every status >= 400 and every
exception gets a class) so a failed call always carries an error_class.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

ERROR_CLASSES: tuple[str, ...] = (
    "rate_limited", "server_error", "auth", "bad_request", "not_found", "timeout", "network", "budget",
    "client_closed",
    "empty_stream",  # HTTP 200 with no byte (after retries): the upstream did not answer
    "truncated_stream",  # a stream that ended without a finish reason
)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3  # retries after the first attempt
    base_delay_s: float = 1.0  # first backoff; doubles each retry
    max_delay_s: float = 30.0  # cap for backoff and for Retry-After
    jitter: float = 0.2  # backoff is multiplied by a factor in [1 - jitter, 1 + jitter]

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry `retry_number` (1-based)."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_delay_s))
        base = self.base_delay_s * (2.0 ** max(0, retry_number - 1))
        factor = 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, min(base * factor, self.max_delay_s))


def retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the upstream asks us to wait: `retry-after-ms`, or Retry-After as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify_status(status: int) -> str | None:
    if status < 400:
        return None
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth"
    if status == 408:
        return "timeout"
    if status == 404:
        return "not_found"  # no such route or model on the upstream: its gap, not the agent's request
    if status >= 500:
        return "server_error"
    return "bad_request"  # 400, 422 and the other 4xx


def classify_exception(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout"
    return "network"
