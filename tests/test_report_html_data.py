"""Synthetic results for the HTML report tests: real trial dirs (trial.json, audit.json, workspace/) on disk.

The hostile trial puts script/img payloads, ANSI escapes and a huge line into a workspace file name, a finding
message, an evidence snippet and the agent's final message: the report must show them as text, never run them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from shipbench.agents.base import Usage
from shipbench.audit.models import ApiCall, AuditResult, Definition, DimensionScore, Evidence, Finding
from shipbench.report.leaderboard import Leaderboard, build_leaderboard
from shipbench.report.load import TrialRow, load_results
from shipbench.store.layout import trial_id
from shipbench.store.records import PhaseRecord, TrialRecord, Versions, WatchdogEvent, save_trial

SCRIPT = "<script>window.__pwned=1</script>"
IMG = "<img src=x onerror=window.__pwned=2>"
# A path (directory + file) whose text is the script payload, and a file named like an img payload.
SCRIPT_PATH = SCRIPT
IMG_FILE = f"app/{IMG}.rb"
HUGE = "A" * 50_000
ANSI = "\x1b[31mred\x1b[0m \x1b]0;title\x07done"

CONFIGS = {  # (agent, model) -> scores per repeat
    ("opencode", "glm-4.6"): [81, 77, 84],
    ("codex", "gpt-5"): [62, 70, 66],
    ("claude", "sonnet-4.5"): [90],
}
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _audit(score: int, hostile: bool) -> AuditResult:
    tier = "A" if score >= 85 else "B" if score >= 70 else "C" if score >= 50 else "D"
    msg = f"Unscoped singleton store {SCRIPT} {IMG}" if hostile else "Chat history kept in a class variable"
    snippet = f"@@store = {{}} # {SCRIPT}\n{IMG}\n{ANSI}\n{HUGE}" if hostile else "@@store = {}"
    path = SCRIPT_PATH if hostile else "app/models/chat_store.rb"
    finding = Finding(rule="persistence.class_variable", dimension="persistence", points=-8, message=msg,
                      evidence=[Evidence(path=path, line=3, snippet=snippet)])
    calls = [ApiCall(path="app/services/chat.rb", line=12, call="RubyLLM.chat", verdict="ok",
                     definition=Definition(gem="ruby_llm", version="1.14.1", path="lib/ruby_llm.rb", line=40)),
             ApiCall(path=IMG_FILE if hostile else "app/services/chat.rb", line=20, call="Chat#complete_now",
                     verdict="missing", detail=f"no such method {IMG}" if hostile else "no such method",
                     suggestions=["complete"])]
    dims = [DimensionScore(id="persistence", title="Persistence", score=7, max=15, findings=[finding]),
            DimensionScore(id="rubyllm", title="RubyLLM usage", score=18, max=20, findings=[])]
    return AuditResult(task="rails-chat", project="workspace", score=score, tier=tier, verdict="scored",
                       dimensions=dims, findings=[finding], api_calls=calls, facts={"persistence": "class_variable"},
                       shipbench_version="0.1.0")


def _phases(hostile: bool, wall: float) -> list[PhaseRecord]:
    usage = Usage(input_tokens=12000, output_tokens=3400, cache_read_tokens=8000)
    final = f"Done! {SCRIPT} {IMG} {ANSI}\n{HUGE}" if hostile else "Built the chat app; all tests pass."
    build = PhaseRecord(n=1, id="build", status="completed", started_at=NOW, ended_at=NOW, wall_s=wall * 0.7,
                        exit_code=0, proxy_usage=usage, stream_usage=usage, llm_calls=14, cost_usd=0.21,
                        models_served={"served-model": 14}, tool_calls={"bash": 9, "write": 12, "read": 5},
                        files_changed=["app/models/chat.rb", IMG_FILE] if hostile else ["app/models/chat.rb"],
                        final_message="phase one done")
    fix = PhaseRecord(n=2, id="validate", status="completed", wall_s=wall * 0.3, exit_code=0, proxy_usage=usage,
                      stream_usage=usage, llm_calls=6, cost_usd=0.09, tool_calls={"bash": 4},
                      watchdog=[WatchdogEvent(at_s=42.0, kind="idle", detail=f"no events for 30 s {SCRIPT}")],
                      final_message=final, files_changed=["test/chat_test.rb"])
    return [build, fix]


def write_trial(root: Path, agent: str, model: str, repeat: int, score: int | None, *, hostile: bool = False,
                status: str = "completed") -> Path:
    tid = trial_id("rails-chat", agent, model, repeat)
    tdir = root / "suite" / tid
    ws = tdir / "workspace"
    (ws / "app" / "models").mkdir(parents=True, exist_ok=True)
    (ws / "app" / "models" / "chat_store.rb").write_text("class ChatStore\n  @@store = {}\nend\n")
    if hostile:
        (ws / SCRIPT_PATH).parent.mkdir(parents=True, exist_ok=True)
        (ws / SCRIPT_PATH).write_text("x = 1\n")
        (ws / IMG_FILE).write_text("y = 2\n")
    wall = 300.0 + 40 * repeat + (len(agent) * 17)
    record = TrialRecord(
        trial_id=tid, suite="suite", task="rails-chat", agent=agent, model_id=model, model=model,
        provider="replay", repeat=repeat, versions=Versions(shipbench="0.1.0", agent_cli=f"{agent} 1.2.3",
                                                             task="rails-chat@1"),
        status=status,  # type: ignore[arg-type]
        status_reason=f"agent said {SCRIPT}" if hostile else "",
        failure_class="infra" if status == "infra_error" else "none", created_at=NOW, updated_at=NOW,
        phases=_phases(hostile, wall), usage=Usage(input_tokens=24000, output_tokens=6800),
        cost_usd=0.30 + 0.05 * len(agent) + 0.01 * repeat, wall_s=wall,
    )
    save_trial(tdir / "trial.json", record)
    if score is not None:
        (tdir / "audit.json").write_text(_audit(score, hostile).model_dump_json(indent=2))
    return tdir


def build_results(root: Path) -> Path:
    """A small suite: three configurations (one single-run), one hostile trial, one infra failure."""
    for (agent, model), scores in CONFIGS.items():
        for repeat, score in enumerate(scores, start=1):
            write_trial(root, agent, model, repeat, score)
    write_trial(root, "gemini", "gemini-2.5-pro", 1, 55, hostile=True)
    write_trial(root, "codex", "gpt-5", 4, None, status="infra_error")
    return root


def board_and_trials(root: Path) -> tuple[Leaderboard, list[TrialRow]]:
    loaded = load_results(build_results(root))
    board = build_leaderboard(loaded.trials, skipped=loaded.skipped, resamples=300)
    return board, loaded.trials


def hostile_id() -> str:
    return trial_id("rails-chat", "gemini", "gemini-2.5-pro", 1)


def test_fixture_builds_a_ranked_board(tmp_path: Path) -> None:
    board, trials = board_and_trials(tmp_path)
    assert len(trials) == 9
    assert [r.key for r in board.rows][:2] == ["claude / sonnet-4.5", "opencode / glm-4.6"]
    assert len(board.infra) == 1
