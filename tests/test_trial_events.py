"""Stream bookkeeping: usage is summed per event, text fragments join, secrets are redacted, progress renders."""

from __future__ import annotations

from io import StringIO

from rich.console import Console
from tests.test_store_index import _record

from shipbench.agents.base import AgentEvent, Usage
from shipbench.runner.events import REDACTED, Redactor, StreamSummary, usage_disagreement
from shipbench.runner.progress import LineProgress, summary_table


def test_summary_sums_usage_and_counts_tools() -> None:
    s = StreamSummary()
    events = [
        AgentEvent(kind="session", session_id="s1"),
        AgentEvent(kind="tool_call", tool="write", usage=Usage(input_tokens=10, output_tokens=2)),
        AgentEvent(kind="tool_result", is_error=True),
        AgentEvent(kind="tool_call", tool="task", delegation=True, usage=Usage(input_tokens=5, cache_read_tokens=7)),
        AgentEvent(kind="text", text="Hel"),
        AgentEvent(kind="text", text="lo"),
        AgentEvent(kind="unparsed", text="garbage"),
        AgentEvent(kind="terminal", text="stop", usage=Usage(output_tokens=1)),
    ]
    for e in events:
        s.add(e)
    assert s.usage == Usage(input_tokens=15, output_tokens=3, cache_read_tokens=7)
    assert dict(s.tool_calls) == {"write": 1, "task": 1} and s.delegations == 1 and s.last_tool == "task"
    assert s.final_message == "Hello"  # fragments joined; the terminal's "stop" does not replace the reply
    assert s.session_id == "s1" and s.error_events == 1 and s.unparsed == 1 and s.terminal is events[-1]
    t = StreamSummary()
    t.add(AgentEvent(kind="terminal", text="All done"))
    assert t.final_message == "All done"


def test_redactor_longest_first() -> None:
    r = Redactor()
    r.add("sk-abc")
    r.add("sk-abcdef")
    r.add(None)
    r.add("ab")  # too short to be a secret: never redacted (it would shred the log)
    assert r('key=sk-abcdef other=sk-abc ab') == f"key={REDACTED} other={REDACTED} ab"


def test_usage_disagreement() -> None:
    assert usage_disagreement(Usage(input_tokens=3), Usage(input_tokens=3)) is None
    text = usage_disagreement(Usage(input_tokens=3, output_tokens=1), Usage(input_tokens=2, output_tokens=1))
    assert text == "input_tokens: proxy 3 vs stream 2"


def test_line_progress_and_summary() -> None:
    buf = StringIO()
    console = Console(file=buf, width=200, force_terminal=False)
    p = LineProgress(console)
    p.trial_started("t1", 2)
    p.phase_started("t1", 1, "build")
    p.on_event("t1", AgentEvent(kind="tool_call", tool="write"))
    p.trial_finished(_record(1), skipped=False)
    p.trial_finished(_record(2, "loop", 40), skipped=True)
    out = buf.getvalue()
    assert "[start] t1" in out and "[phase] t1 phase 1 (build)" in out
    assert "[done] rails-chat__codex__m__r1: completed score 70 tier C" in out
    assert "[skip] rails-chat__codex__m__r2: loop" in out
    infra = _record(2, "infra_error", None).model_copy(update={"failure_class": "infra"})
    console.print(summary_table([_record(1), infra]))
    table = buf.getvalue()
    assert "infra_error (infra)" in table and "0.5000" in table


def test_live_table_rows() -> None:
    from shipbench.runner.progress import LiveProgress, make_progress

    console = Console(file=StringIO(), width=200, force_terminal=True)
    live = make_progress(console)
    assert isinstance(live, LiveProgress)
    with live:
        live.trial_started("t1", 1)
        live.phase_started("t1", 1, "build")
        live.on_event("t1", AgentEvent(kind="tool_call", tool="Write"))
        live.on_usage("t1", Usage(input_tokens=100, cache_read_tokens=20, output_tokens=7), 0.0123)
        text = StringIO()
        Console(file=text, width=200).print(live.table())
    assert "1:build" in text.getvalue() and "120/7" in text.getvalue() and "Write" in text.getvalue()
    assert not isinstance(make_progress(Console(file=StringIO(), force_terminal=False)), LiveProgress)
