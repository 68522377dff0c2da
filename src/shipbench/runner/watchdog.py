"""Watchdogs for one agent phase: wall clock, idle, tool-call loops, consecutive errors, output throughput.

Invariants: the watchdog only observes (events, workspace activity, proxy tokens) and reads an injected clock; it
never stops anything itself. A loop or error-streak verdict is latched when it happens, so a later event cannot
hide it; `check()` reports in the order loop, errors, timeout, idle, slow.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shipbench.agents.base import AgentEvent
from shipbench.config import Limits

VerdictKind = Literal["timeout", "idle", "loop", "errors", "slow"]
SLOW_WARMUP_S = 60.0  # no throughput verdict before this much of the phase has passed
SLOW_WINDOW_S = 60.0  # output tokens/s is measured over this trailing window
_CYCLE_PERIODS = (2, 3)


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    detail: str


def _loop_verdict(calls: deque[tuple[str, str]], repeats: int) -> Verdict | None:
    """The same call `repeats` times in a row, or a cycle of period 2-3 covering >= max(repeats, 2 periods) calls."""
    history = list(calls)
    last = history[-1]
    run = 0
    for call in reversed(history):
        if call != last:
            break
        run += 1
    if run >= repeats:
        return Verdict("loop", f"tool {last[0]!r} called {run} times in a row with the same input")
    for period in _CYCLE_PERIODS:
        cycle = history[-period:]
        if len(cycle) < period or len(set(cycle)) < period:
            continue
        span = period
        while span < len(history) and history[-span - 1] == history[-span - 1 + period]:
            span += 1
        if span >= max(repeats, 2 * period):
            names = " -> ".join(tool for tool, _ in cycle)
            return Verdict("loop", f"cycle of {period} tool calls ({names}) repeated over {span} calls")
    return None


class Watchdog:
    """Feeds on one phase's observations; `check()` says whether (and why) the phase should be stopped."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.started = clock()
        self.last_activity = self.started
        self.calls: deque[tuple[str, str]] = deque(maxlen=max(limits.loop_repeats, 6) + 3)
        self.consecutive_errors = 0
        self.last_error = ""
        self.tokens: deque[tuple[float, int]] = deque()
        self.latched: Verdict | None = None

    def on_event(self, event: AgentEvent) -> None:
        self.last_activity = self.clock()
        if event.kind == "tool_call":
            self.calls.append((event.tool or "?", event.tool_input or ""))
            self._latch(_loop_verdict(self.calls, self.limits.loop_repeats))
        elif event.kind == "error" or (event.kind == "tool_result" and event.is_error):
            self.consecutive_errors += 1
            self.last_error = (event.text or event.tool or event.raw_type or "")[:200]
            if self.consecutive_errors >= self.limits.max_consecutive_errors:
                detail = f"{self.consecutive_errors} consecutive errors; last: {self.last_error}"
                self._latch(Verdict("errors", detail))
        elif event.kind == "tool_result":
            self.consecutive_errors = 0

    def on_activity(self) -> None:
        self.last_activity = self.clock()

    def on_requests(self, identical_run: int, identical_ok: int) -> None:
        """The proxy's run of byte-identical requests: an agent re-sending the same conversation is stuck. When
        the upstream answered them, that is a loop; when it failed them, an error streak (its class decides)."""
        if identical_run < self.limits.loop_repeats:
            return
        answered = identical_ok >= identical_run - 1
        if not answered and identical_run < max(self.limits.loop_repeats, self.limits.max_consecutive_errors):
            return  # a client retrying a failing call is no streak yet: the usual error limit applies
        if answered:
            self._latch(Verdict("loop", f"the same request was sent {identical_run} times in a row and answered "
                                        "each time (the agent makes no progress)"))
        else:
            self._latch(Verdict("errors", f"the same request was sent {identical_run} times in a row; the upstream "
                                          f"failed {identical_run - identical_ok} of them"))

    def on_tokens(self, n: int) -> None:
        if n > 0:
            self.tokens.append((self.clock(), n))

    def check(self) -> Verdict | None:
        if self.latched is not None:
            return self.latched
        now = self.clock()
        elapsed = now - self.started
        if elapsed > self.limits.phase_wall_s:
            return Verdict("timeout", f"phase ran {elapsed:.0f} s > limit {self.limits.phase_wall_s:.0f} s")
        quiet = now - self.last_activity
        if quiet >= self.limits.idle_s:
            return Verdict("idle", f"no event and no file change for {quiet:.0f} s (limit {self.limits.idle_s:.0f} s)")
        return self._slow(now, elapsed)

    def _slow(self, now: float, elapsed: float) -> Verdict | None:
        floor = self.limits.min_tokens_per_s
        if floor <= 0 or elapsed < SLOW_WARMUP_S:
            return None
        while self.tokens and self.tokens[0][0] <= now - SLOW_WINDOW_S:
            self.tokens.popleft()
        rate = sum(n for _, n in self.tokens) / SLOW_WINDOW_S
        if rate >= floor:
            return None
        return Verdict("slow", f"{rate:.1f} output tokens/s over the last {SLOW_WINDOW_S:.0f} s < {floor:g}")

    def _latch(self, verdict: Verdict | None) -> None:
        if verdict is not None and self.latched is None:
            self.latched = verdict


_Fingerprint = tuple[int, int]


class WorkspaceActivity:
    """Cheap change detector over a workspace: `poll()` is True when files changed since the previous poll.

    A fingerprint over (relative path, size, mtime_ns) of every file and directory, skipping ignored directory
    names at any depth and never following symlinks; the baseline is taken at construction.
    """

    def __init__(
        self,
        root: Path,
        ignore: frozenset[str] = frozenset({".git", "node_modules", "tmp", "log", "vendor"}),
    ) -> None:
        self.root = root
        self.ignore = ignore
        self.last = self._fingerprint()

    def poll(self) -> bool:
        now = self._fingerprint()
        changed = now != self.last
        self.last = now
        return changed

    def _fingerprint(self) -> _Fingerprint:
        count = 0
        digest = 0
        todo = [self.root]
        while todo:
            folder = todo.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.name in self.ignore:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(Path(entry.path))
                except OSError:
                    continue
                count += 1
                digest ^= hash((entry.path, st.st_size, st.st_mtime_ns))
        return count, digest
