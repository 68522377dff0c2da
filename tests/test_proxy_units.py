"""Pure parts of the proxy: SSE framing, Retry-After, error classes, usage normalisation, routes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from tests.test_proxy_fakeupstream import EXPECTED, STREAMS

from shipbench.proxy.retry import RetryPolicy, classify_status, parse_retry_after
from shipbench.proxy.sse import SseDecoder, SseEvent
from shipbench.proxy.usage import Meter
from shipbench.proxy.wires import match_route, upstream_url


@pytest.mark.parametrize("wire", sorted(STREAMS))
def test_sse_any_chunking_gives_same_events_and_usage(wire: str) -> None:
    raw = b"".join(STREAMS[wire]())
    whole = SseDecoder().feed(raw)
    rng = random.Random(7)
    for _ in range(20):
        dec, events, i = SseDecoder(), [], 0
        while i < len(raw):
            n = rng.randint(1, 9)
            events += dec.feed(raw[i:i + n])
            i += n
        events += dec.close()
        assert events == whole
    meter = Meter(wire)  # type: ignore[arg-type]
    for ev in whole:
        meter.feed_sse_data(ev.data)
    assert meter.usage().model_dump() == EXPECTED[wire]


def test_sse_fields_comments_crlf_and_multiline() -> None:
    dec = SseDecoder()
    out = dec.feed(b": comment\r\nevent: x\r\ndata: a\r\ndata:b\r\n\r\ndata: tail")
    assert out == [SseEvent("x", "a\nb")]
    assert dec.close() == [SseEvent(None, "tail")]


def test_sse_oversized_event_dropped() -> None:
    dec = SseDecoder(max_event_bytes=10)
    assert dec.feed(b"data: " + b"x" * 50 + b"\n\ndata: ok\n\n") == [SseEvent(None, "ok")]


def test_retry_after_seconds_date_ms_and_cap() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"Retry-After": format_datetime(now + timedelta(seconds=7), usegmt=True)},
                             now=now) == pytest.approx(7.0)
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert parse_retry_after({"Retry-After": "soon"}) is None and parse_retry_after({}) is None
    policy = RetryPolicy(base_delay_s=1, max_delay_s=5, jitter=0.0)
    assert policy.delay(1, 600.0) == 5.0  # Retry-After is capped
    assert [policy.delay(n, None) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    jittered = RetryPolicy(base_delay_s=1, jitter=0.5).delay(1, None, random.Random(1))
    assert 0.5 <= jittered <= 1.5


def test_classify_status() -> None:
    assert [classify_status(s) for s in (200, 400, 401, 403, 404, 422, 429, 500, 529)] == [
        None, "bad_request", "auth", "auth", "not_found", "bad_request", "rate_limited", "server_error",
        "server_error"]


def test_usage_anthropic_message_delta_with_cumulative_fields() -> None:
    m = Meter("anthropic_messages")
    m.feed({"type": "message_start", "message": {"model": "claude-x", "usage": {"input_tokens": 5,
                                                                                "output_tokens": 1}}})
    m.feed({"type": "message_delta", "usage": {"output_tokens": 40, "cache_read_input_tokens": 7}})
    assert (m.model, m.usage().output_tokens, m.usage().cache_read_tokens, m.usage().input_tokens) == (
        "claude-x", 40, 7, 5)


def test_usage_openrouter_cache_write_and_garbage() -> None:
    m = Meter("openai_chat")
    m.feed_json_text(b"not json")
    m.feed_sse_data("[DONE]")
    m.feed({"model": "x", "usage": {"prompt_tokens": 100, "completion_tokens": 3,
                                    "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30}}})
    u = m.usage()
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens) == (10, 60, 30)


def test_routes_and_urls() -> None:
    gem = match_route("POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent")
    assert gem is not None and gem.gemini_model == "gemini-2.5-pro" and gem.gemini_stream
    assert match_route("POST", "/v1/messages/count_tokens").route.metered is False  # type: ignore[union-attr]
    assert match_route("GET", "/v1/chat/completions") is None
    assert match_route("POST", "/api/v1/chat/completions") is None
    assert upstream_url("https://openrouter.ai/api", "/v1/chat/completions", []) == \
        "https://openrouter.ai/api/v1/chat/completions"
    assert upstream_url("http://h:1/v1beta", "/v1beta/models/m:generateContent", [("key", "k"), ("alt", "sse")]) == \
        "http://h:1/v1beta/models/m:generateContent?alt=sse"
