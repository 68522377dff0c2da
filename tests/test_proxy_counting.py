"""Metering when the upstream reports nothing: counted by the server, estimated, or flagged; never a silent 0.
Also answers that are not answers: an empty 200 stream and a stream cut before its finish reason."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.test_proxy import proxy_env, run
from tests.test_proxy_fakeupstream import Scripted, sse

from shipbench.proxy import RetryPolicy
from shipbench.proxy.counting import CHARS_PER_TOKEN, count_missing, estimate_tokens, reask_body
from shipbench.proxy.usage import Meter

MODEL = "smollm2"


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    return sse({"id": "c1", "object": "chat.completion.chunk", "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def stream_without_usage(text: str = "I'm sorry for any confusion.") -> list[bytes]:
    """What llama-cpp-python streams: deltas, a finish reason, [DONE], and no usage (include_usage ignored)."""
    half = len(text) // 2
    return [_chunk({"role": "assistant", "content": text[:half]}), _chunk({"content": text[half:]}),
            _chunk({}, "stop"), b"data: [DONE]\n\n"]


def test_meter_keeps_text_and_finish_per_wire() -> None:
    m = Meter("openai_chat")
    for frame in stream_without_usage("abc def"):
        m.feed_sse_data(frame.decode().removeprefix("data: ").strip())
    assert m.output_text == "abc def" and m.finished and m.finish_reason == "stop" and not m.seen_usage
    tool = Meter("openai_chat")
    tool.feed({"choices": [{"delta": {"tool_calls": [{"function": {"name": "write", "arguments": '{"p":1}'}}]},
                            "finish_reason": None}]})
    assert tool.output_text == 'write{"p":1}' and not tool.finished
    resp = Meter("openai_responses")
    resp.feed({"type": "response.output_text.delta", "delta": "hi"})
    assert not resp.finished
    resp.feed({"type": "response.completed", "response": {"usage": {"input_tokens": 3, "output_tokens": 1}}})
    assert resp.finished and resp.output_text == "hi" and resp.usage().input_tokens == 3
    anth = Meter("anthropic_messages")
    anth.feed({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "yo"}})
    anth.feed({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}})
    assert anth.finish_reason == "end_turn" and anth.output_text == "yo"
    gem = Meter("gemini")
    gem.feed({"candidates": [{"content": {"parts": [{"text": "x"}]}}]})
    assert not gem.finished
    gem.feed({"candidates": [{"finishReason": "STOP"}]})
    assert gem.finished


def test_reask_body_is_one_token_and_not_streamed() -> None:
    body = json.dumps({"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True},
                       "max_completion_tokens": 9000, "tools": [{"type": "function"}]}).encode()
    again = json.loads(reask_body(body) or b"{}")
    assert again == {"model": "m", "messages": [], "tools": [{"type": "function"}], "stream": False, "max_tokens": 1}
    assert reask_body(b"[1, 2]") is None and reask_body(b"not json") is None


def test_count_missing_sources() -> None:
    async def body() -> None:
        meter = Meter("openai_chat")
        meter.feed({"choices": [{"delta": {"content": "four words right here"}, "finish_reason": "stop"}]})

        async def prompt() -> int | None:
            return 25

        async def tokenize(text: str) -> int | None:
            return len(text.split())

        exact = await count_missing(meter, wire="openai_chat", body=b"x" * 400, self_hosted=True,
                                    prompt_counter=prompt, tokenize=tokenize)
        assert exact.source == "server_tokenizer" and (exact.usage.input_tokens, exact.usage.output_tokens) == (25, 4)
        cloud = await count_missing(meter, wire="openai_chat", body=b"x" * 400, self_hosted=False,
                                    prompt_counter=prompt, tokenize=tokenize)  # a paid provider is never re-asked
        assert cloud.source == "estimate" and cloud.usage.input_tokens == 400 // CHARS_PER_TOKEN
        assert cloud.usage.output_tokens == 4  # the tokenizer still counted the answer

        async def down() -> int | None:
            return None

        est = await count_missing(meter, wire="openai_chat", body=b"x" * 401, self_hosted=True,
                                  prompt_counter=down, tokenize=None)
        assert est.source == "estimate" and est.usage.input_tokens == 101
        assert est.usage.output_tokens == estimate_tokens(len("four words right here")) > 0
        nothing = await count_missing(Meter("openai_chat"), wire="openai_chat", body=b"", self_hosted=False,
                                      prompt_counter=None, tokenize=None)
        assert nothing.source == "none" and nothing.usage.total == 0

    run(body())


def test_stream_without_usage_is_estimated_never_zero(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="openai_compatible") as env:
            env.up.queue.append(Scripted(events=stream_without_usage()))
            status, data = await env.send("openai_chat", True)
            assert status == 200 and data == b"".join(stream_without_usage())  # relayed untouched
            [rec] = env.records()
            assert rec.usage_source == "estimate" and rec.usage.input_tokens > 0 and rec.usage.output_tokens > 0
            assert rec.error_class is None and rec.finish_reason == "stop"
            assert len(env.up.requests) == 1  # not self-hosted: nobody is re-asked
            assert env.lease.usage_sources == {"estimate": 1} and env.lease.unpriced_calls == 1

    run(body())


def test_self_hosted_stream_is_counted_by_the_server(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="openai_compatible", serving_kind="llama-cpp-python") as env:
            calls: list[str] = []

            def factory(kind: str, base: str, model: str) -> Callable[[str], Awaitable[int | None]]:
                async def tokenize(text: str) -> int | None:
                    calls.append(f"{kind} {model} {text}")
                    return 7

                return tokenize

            env.proxy.set_tokenizer(factory)
            env.up.queue.append(Scripted(events=stream_without_usage()))
            env.up.queue.append(Scripted(body={"object": "chat.completion", "model": MODEL, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "A"}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 25, "completion_tokens": 1, "total_tokens": 26}}))
            status, _ = await env.send("openai_chat", True)
            assert status == 200
            [rec] = env.records()
            assert rec.usage_source == "server_tokenizer"
            assert (rec.usage.input_tokens, rec.usage.output_tokens) == (25, 7)
            reask = env.up.requests[1].json()
            assert reask["stream"] is False and reask["max_tokens"] == 1 and "stream_options" not in reask
            assert reask["messages"] == env.up.requests[0].json()["messages"]
            assert calls == ["llama-cpp-python anthropic/claude-sonnet-4.5 I'm sorry for any confusion."]

    run(body())


def test_zero_usage_beside_text_is_not_taken_as_usage(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="openai_compatible") as env:
            zeros = sse({"id": "c1", "choices": [], "usage": {"prompt_tokens": 0, "completion_tokens": 0}})
            frames = [*stream_without_usage()[:-1], zeros, b"data: [DONE]\n\n"]
            env.up.queue.append(Scripted(events=frames))
            await env.send("openai_chat", True)
            [rec] = env.records()
            assert rec.usage_source == "estimate" and rec.usage.output_tokens > 0

    run(body())


def test_empty_200_stream_is_retried_then_an_error(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="openai_compatible",
                             policy=RetryPolicy(max_retries=1, base_delay_s=0.001)) as env:
            env.up.queue.extend([Scripted(events=[]), Scripted(events=[])])
            status, data = await env.send("openai_chat", True)
            assert status == 502 and b"empty stream" in data
            [rec] = env.records()
            assert rec.error_class == "empty_stream" and rec.attempts == 2 and rec.usage.total == 0
            assert rec.usage_source is None and env.lease.ok_calls == 0 and env.lease.provider_errors == 1
            env.up.queue.append(Scripted(events=[]))  # once empty, then a real answer: the retry hides it
            status, _ = await env.send("openai_chat", True)
            assert status == 200 and env.records()[-1].attempts == 2 and env.records()[-1].error_class is None

    run(body())


def test_stream_cut_before_its_finish_is_marked(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="openai_compatible") as env:
            env.up.queue.append(Scripted(events=stream_without_usage()[:2]))  # no finish reason, no [DONE]
            status, _ = await env.send("openai_chat", True)
            assert status == 200
            [rec] = env.records()
            assert rec.error_class == "truncated_stream" and rec.usage_source == "estimate"
            assert env.lease.provider_errors == 1 and env.lease.last_error_class == "truncated_stream"

    run(body())


def test_identical_requests_are_tracked(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path) as env:
            for _ in range(3):
                await env.send("openai_chat", False)
            assert env.lease.identical_run == 3 and env.lease.identical_ok == 3
            await env.send("openai_chat", True)  # another body
            assert env.lease.identical_run == 1

    run(body())


def test_stream_without_usage_from_a_llama_cpp_python_persona_matches_its_own_counts(tmp_path: Path) -> None:
    """Through the real serving backend (no injected tokenizer): the proxy's counts for a streamed answer without
    usage equal what the same server reports for the same body answered whole."""
    import aiohttp

    from shipbench.agents.base import Usage
    from shipbench.config import Budget
    from shipbench.proxy import MeteringProxy, UpstreamTarget
    from shipbench.replay.server import Fault, ReplayServer
    from shipbench.replay.trajectory import HELLO_TRAJECTORY
    from shipbench.store.records import LlmCallRecord

    async def body() -> tuple[LlmCallRecord, dict[str, int], bytes]:
        server = ReplayServer(HELLO_TRAJECTORY, fault=Fault(kind="no_stream_usage"), persona="llama-cpp-python")
        url = await server.start()
        proxy = MeteringProxy()
        base = await proxy.start()
        calls = tmp_path / "calls.jsonl"
        lease = proxy.open_lease(trial_id="t", phase=1, budget=Budget(), calls_path=calls, upstream=UpstreamTarget(
            provider="openai_compatible", base_url=url, serving_kind="llama-cpp-python"))
        request = {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": "Say hello to the whole world."}]}
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(base + "/v1/chat/completions", headers={"Authorization": f"Bearer {lease.token}"},
                                     json={**request, "stream": True, "stream_options": {"include_usage": True}}) as r:
                    raw = await r.read()
                async with http.post(url + "/v1/chat/completions", json=request) as r:
                    truth = (await r.json())["usage"]
        finally:
            proxy.close_lease(lease)
            await proxy.stop()
            await server.stop()
        [rec] = [LlmCallRecord.model_validate_json(line) for line in calls.read_text().splitlines()]
        assert rec.usage != Usage()
        return rec, truth, raw

    rec, truth, raw = asyncio.run(body())
    assert b'"usage"' not in raw  # the persona really streamed no usage
    assert rec.usage_source == "server_tokenizer"
    assert rec.usage.input_tokens == truth["prompt_tokens"]
    assert abs(rec.usage.output_tokens - truth["completion_tokens"]) <= max(1, 0.01 * truth["completion_tokens"])


def test_an_upstream_that_hangs_up_after_the_finish_still_delivers_the_whole_answer(tmp_path: Path) -> None:
    async def body() -> None:
        async with proxy_env(tmp_path, provider="openai_compatible") as env:
            frames = stream_without_usage()
            env.up.queue.append(Scripted(events=[*frames, b"data: {}\n\n"], break_after=len(frames)))
            status, data = await env.send("openai_chat", True)
            assert status == 200 and data == b"".join(frames)  # the held end (finish, [DONE]) reached the agent
            [rec] = env.records()
            assert rec.error_class is None and rec.finish_reason == "stop" and rec.usage_source == "estimate"
            assert rec.usage.output_tokens > 0

    run(body())


def test_an_empty_stream_from_a_self_hosted_server_gets_its_whole_answer_error(tmp_path: Path) -> None:
    """llama-cpp-python streams nothing for a prompt over its context, but refuses it whole with a 400: the agent
    gets that 400 (it can compact), and the call is the agent's request error, as without streaming."""
    overflow = {"error": {"message": "This model's maximum context length is 4096 tokens. However, you requested "
                                     "5036 tokens", "type": "invalid_request_error", "code": "context_length_exceeded"}}

    async def body() -> None:
        async with proxy_env(tmp_path, provider="openai_compatible", serving_kind="llama-cpp-python") as env:
            env.up.queue.extend([Scripted(events=[]), Scripted(status=400, body=overflow)])
            status, data = await env.send("openai_chat", True)
            assert status == 400 and json.loads(data) == overflow
            [rec] = env.records()
            assert rec.error_class == "bad_request" and rec.status == 400 and rec.attempts == 1
            reask = env.up.requests[1].json()
            assert reask["stream"] is False and reask["max_tokens"] == 1
            env.up.queue.extend([Scripted(events=[]), Scripted(events=stream_without_usage())])  # a glitch: retried
            status, _ = await env.send("openai_chat", True)
            assert status == 200 and env.records()[-1].attempts == 2

    run(body())
