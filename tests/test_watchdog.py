"""Watchdog verdicts with an injected clock, and the workspace change detector on a real directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from shipbench.agents.base import AgentEvent
from shipbench.config import Limits
from shipbench.runner.watchdog import SLOW_WARMUP_S, SLOW_WINDOW_S, Verdict, Watchdog, WorkspaceActivity


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def call(tool: str, arg: str = "") -> AgentEvent:
    return AgentEvent(kind="tool_call", tool=tool, tool_input=arg)


def make(**limits: Any) -> tuple[Watchdog, Clock]:
    clock = Clock()
    return Watchdog(Limits(**limits), clock=clock), clock


def test_quiet_healthy_phase_has_no_verdict() -> None:
    dog, clock = make(idle_s=60, phase_wall_s=600)
    for i in range(20):
        clock.advance(10)
        dog.on_event(call("bash", f"step {i}"))
        dog.on_event(AgentEvent(kind="tool_result"))
    assert dog.check() is None


def test_timeout_after_phase_wall_clock() -> None:
    dog, clock = make(phase_wall_s=100, idle_s=1000)
    clock.advance(100)
    assert dog.check() is None
    clock.advance(1)
    dog.on_event(AgentEvent(kind="text", text="still busy"))
    verdict = dog.check()
    assert verdict is not None and verdict.kind == "timeout" and "100" in verdict.detail


def test_idle_counts_from_last_event_or_file_change() -> None:
    dog, clock = make(idle_s=30)
    clock.advance(29)
    assert dog.check() is None
    dog.on_event(AgentEvent(kind="step"))
    clock.advance(29)
    dog.on_activity()  # files changed: the agent is working (e.g. a long tool run writing files)
    clock.advance(29)
    assert dog.check() is None
    clock.advance(1)
    verdict = dog.check()
    assert verdict is not None and verdict.kind == "idle"


@pytest.mark.parametrize("repeats", [3, 6])
def test_same_call_repeated_is_a_loop(repeats: int) -> None:
    dog, _ = make(loop_repeats=repeats)
    dog.on_event(call("read", "a.rb"))
    for _ in range(repeats - 1):
        dog.on_event(call("bash", "rails test"))
        dog.on_event(AgentEvent(kind="tool_result", is_error=False))
    assert dog.check() is None
    dog.on_event(call("bash", "rails test"))
    verdict = dog.check()
    assert verdict == Verdict("loop", f"tool 'bash' called {repeats} times in a row with the same input")


def test_same_tool_with_different_inputs_is_not_a_loop() -> None:
    dog, _ = make(loop_repeats=3)
    for i in range(10):
        dog.on_event(call("write", f"file{i}.rb"))
    assert dog.check() is None


def test_ab_cycle_is_a_loop_and_latched() -> None:
    dog, _ = make(loop_repeats=6)
    for _ in range(2):
        dog.on_event(call("edit", "x"))
        dog.on_event(call("bash", "test"))
    dog.on_event(call("edit", "x"))
    assert dog.check() is None  # 5 calls in the cycle
    dog.on_event(call("bash", "test"))
    verdict = dog.check()
    assert verdict is not None and verdict.kind == "loop"
    assert "edit -> bash" in verdict.detail and "6 calls" in verdict.detail
    dog.on_event(call("write", "new"))  # breaking the cycle afterwards does not undo the verdict
    assert dog.check() == verdict


def test_abc_cycle_is_a_loop() -> None:
    dog, _ = make(loop_repeats=6)
    for tool in ["read", "edit", "bash"] * 2:
        dog.on_event(call(tool, tool))
    verdict = dog.check()
    assert verdict is not None and verdict.kind == "loop" and "read -> edit -> bash" in verdict.detail


def test_cycle_needs_two_full_periods_even_with_low_repeats() -> None:
    dog, _ = make(loop_repeats=2)
    dog.on_event(call("read", "a"))
    dog.on_event(call("edit", "b"))
    dog.on_event(call("bash", "c"))
    assert dog.check() is None
    dog.on_event(call("read", "a"))
    assert dog.check() is None  # A-B-C-A: not yet a repeat of a whole cycle


def test_broken_cycle_is_not_a_loop() -> None:
    dog, _ = make(loop_repeats=4)
    for tool in ["a", "b", "a", "c", "a", "b", "a", "c"]:
        dog.on_event(call(tool))
    assert dog.check() is None


def test_consecutive_errors_reset_by_a_successful_tool_result() -> None:
    dog, _ = make(max_consecutive_errors=3)
    dog.on_event(AgentEvent(kind="error", text="APIError"))
    dog.on_event(AgentEvent(kind="tool_result", is_error=True, text="no such file"))
    dog.on_event(AgentEvent(kind="tool_result", is_error=False))
    dog.on_event(AgentEvent(kind="error", text="e1"))
    dog.on_event(AgentEvent(kind="text", text="let me retry"))  # text is not success
    dog.on_event(AgentEvent(kind="tool_result", is_error=True, text="e2"))
    assert dog.check() is None
    dog.on_event(AgentEvent(kind="error", text="last straw"))
    verdict = dog.check()
    assert verdict is not None and verdict.kind == "errors"
    assert verdict.detail.startswith("3 consecutive errors") and "last straw" in verdict.detail


def test_loop_is_reported_before_timeout() -> None:
    dog, clock = make(loop_repeats=2, phase_wall_s=10)
    dog.on_event(call("bash", "x"))
    dog.on_event(call("bash", "x"))
    clock.advance(11)
    verdict = dog.check()
    assert verdict is not None and verdict.kind == "loop"


def test_slow_disabled_when_zero() -> None:
    dog, clock = make(idle_s=10_000, phase_wall_s=10_000)
    clock.advance(1000)
    dog.on_event(AgentEvent(kind="step"))
    assert dog.check() is None


def test_slow_after_warmup_over_the_trailing_window() -> None:
    dog, clock = make(min_tokens_per_s=10, idle_s=10_000, phase_wall_s=10_000)
    for _ in range(int(SLOW_WARMUP_S) - 1):
        clock.advance(1)
        dog.on_tokens(1)  # 1 tok/s, but still warming up
        assert dog.check() is None
    clock.advance(1)
    dog.on_tokens(1)
    verdict = dog.check()
    assert verdict is not None and verdict.kind == "slow" and "< 10" in verdict.detail

    fast, clock = make(min_tokens_per_s=10, idle_s=10_000, phase_wall_s=10_000)
    for _ in range(int(SLOW_WARMUP_S + SLOW_WINDOW_S)):
        clock.advance(1)
        fast.on_tokens(12)
    assert fast.check() is None
    clock.advance(SLOW_WINDOW_S / 2)  # half the window without tokens: 6 tok/s over the window
    assert (v := fast.check()) is not None and v.kind == "slow"


def test_workspace_activity_sees_create_modify_delete(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    target = tmp_path / "app" / "model.rb"
    target.write_text("class A; end\n")
    activity = WorkspaceActivity(tmp_path)
    assert activity.poll() is False
    (tmp_path / "app" / "new.rb").write_text("x")
    assert activity.poll() is True
    assert activity.poll() is False
    target.write_text("class A; def b; end; end\n")
    assert activity.poll() is True
    os.utime(target, ns=(1, 1))  # same size, different mtime
    assert activity.poll() is True
    target.unlink()
    assert activity.poll() is True
    assert activity.poll() is False


def test_workspace_activity_ignores_noise_dirs(tmp_path: Path) -> None:
    for name in (".git", "node_modules", "log", "tmp"):
        (tmp_path / name).mkdir()
    (tmp_path / "src").mkdir()
    activity = WorkspaceActivity(tmp_path)
    (tmp_path / ".git" / "index").write_text("x")
    (tmp_path / "node_modules" / "pkg").mkdir()
    (tmp_path / "src" / "tmp").mkdir()  # ignored names count at any depth, but the parent dir changed
    assert activity.poll() is True
    assert activity.poll() is False
    (tmp_path / "log" / "development.log").write_text("GET /")
    (tmp_path / "src" / "tmp" / "cache").write_text("c")
    assert activity.poll() is False


def test_identical_requests_answered_are_a_loop_and_failed_ones_an_error_streak() -> None:
    wd, clock = make(loop_repeats=4)
    wd.on_requests(3, 3)
    assert wd.check() is None  # below the limit
    wd.on_requests(4, 4)
    verdict = wd.check()
    assert verdict is not None and verdict.kind == "loop" and "4 times" in verdict.detail
    failing = Watchdog(Limits(loop_repeats=4, max_consecutive_errors=6), clock=clock)
    failing.on_requests(5, 1)  # a client retrying a failing call: below the error limit, no verdict yet
    assert failing.check() is None
    failing.on_requests(6, 1)  # an empty 200 stream, re-sent: the upstream's failure, not a model loop
    verdict = failing.check()
    assert verdict is not None and verdict.kind == "errors" and "failed 5" in verdict.detail
