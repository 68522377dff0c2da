"""Plan expansion, key resolution, concurrency slots, markers, config snapshots, exit codes, status helpers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.test_store_index import _record
from tests.test_trial_support import suite_config, write_task

from shipbench.config import ModelConfig
from shipbench.runner.command import exit_code, load_suite_file
from shipbench.runner.plan import Limiters, PlanError, expand_plans, resolve_key
from shipbench.runner.trial import _worse, failure_class_of, is_done
from shipbench.store.layout import SuitePaths
from shipbench.tasks.pack import load_task


def _suite(tmp_path: Path, **extra: object):  # type: ignore[no-untyped-def]
    task = write_task(tmp_path / "task", {"build": "Build it", "validate": "Check it"})
    data: dict[str, object] = {
        "agents": [{"name": "codex"}, {"name": "claude", "prompt_variant": "terse"}],
        "models": [
            {"id": "rp", "model": "replay-model", "provider": "replay"},
            {"id": "sonnet", "model": "anthropic/claude-sonnet-4.5", "provider": "openrouter", "concurrency": 1},
        ],
        "repeats": 2,
    }
    data.update(extra)
    return suite_config(task, **data), load_task(task)


def test_expand_order_and_ids(tmp_path: Path) -> None:
    suite, task = _suite(tmp_path)
    plans = expand_plans(suite, task, SuitePaths(tmp_path / "out"), force={"tiny__claude-terse__rp__r2"})
    assert [p.trial_id for p in plans] == [
        "tiny__codex__rp__r1", "tiny__codex__rp__r2", "tiny__codex__sonnet__r1", "tiny__codex__sonnet__r2",
        "tiny__claude-terse__rp__r1", "tiny__claude-terse__rp__r2",
        "tiny__claude-terse__sonnet__r1", "tiny__claude-terse__sonnet__r2",
    ]
    assert [p.trial_id for p in plans if p.force] == ["tiny__claude-terse__rp__r2"]
    only = expand_plans(suite, task, SuitePaths(tmp_path / "out"), only_agent="claude",
                        only_model="anthropic/claude-sonnet-4.5", repeats=3)
    assert [p.trial_id for p in only] == [f"tiny__claude-terse__sonnet__r{n}" for n in (1, 2, 3)]


def test_phase_subset_keeps_task_numbering_and_variants(tmp_path: Path) -> None:
    suite, task = _suite(tmp_path, phases=["validate"])
    codex, claude = (p for p in expand_plans(suite, task, SuitePaths(tmp_path)) if p.repeat == 1 and p.model.id == "rp")
    (phase,) = codex.phases()
    assert (phase.n, phase.id) == (2, "validate")
    assert codex.prompt(phase) == "Check it"
    with pytest.raises(PlanError, match="variant 'terse'"):
        claude.prompt(phase)
    (task.root / "prompts" / "validate.terse.md").write_text("Check it, briefly")
    assert claude.prompt(phase) == "Check it, briefly"


def test_markers_and_snapshot(tmp_path: Path) -> None:
    suite, task = _suite(tmp_path, models=[{"id": "c", "model": "m", "provider": "openrouter",
                                            "api_key_env": "MY_KEY"}])
    a, b = expand_plans(suite, task, SuitePaths(tmp_path))[:2]
    assert a.marker(1) == expand_plans(suite, task, SuitePaths(tmp_path))[0].marker(1)  # stable across runs
    assert len({a.marker(1), a.marker(2), b.marker(1)}) == 3
    snapshot = a.config_snapshot()
    assert snapshot["model"]["api_key_env"] == "MY_KEY"  # type: ignore[index]
    assert "sk-" not in repr(snapshot)


def test_resolve_key() -> None:
    cloud = ModelConfig(id="c", model="m", provider="openrouter")
    assert resolve_key(cloud, {"OPENROUTER_API_KEY": "sk-1"}) == ("sk-1", None)
    key, error = resolve_key(cloud, {})
    assert key is None and error is not None and "OPENROUTER_API_KEY is not set" in error
    assert resolve_key(ModelConfig(id="r", model="m", provider="replay"), {}) == (None, None)
    local = ModelConfig(id="l", model="m", provider="openai_compatible", base_url="http://127.0.0.1:1")
    assert resolve_key(local, {}) == (None, None)
    named = local.model_copy(update={"api_key_env": "LOCAL_KEY"})
    assert resolve_key(named, {})[1] is not None
    assert resolve_key(ModelConfig(id="r", model="m", provider="replay", api_key_env="RK"), {"RK": "k"}) == ("k", None)


def test_limiter_slots(tmp_path: Path) -> None:
    suite, _ = _suite(tmp_path, provider_concurrency={"openrouter": 2})

    async def check() -> None:
        limiters = Limiters.for_suite(suite, jobs=4)
        rp, sonnet = suite.models
        assert limiters.slots(rp) == [limiters.jobs]
        assert limiters.slots(sonnet) == [limiters.jobs, limiters.providers["openrouter"], limiters.models["sonnet"]]

    asyncio.run(check())


def test_status_helpers() -> None:
    assert is_done(_record(1, "loop")) and not is_done(_record(1, "infra_error")) and not is_done(_record(1, "running"))
    assert failure_class_of("provider_error") == "infra" and failure_class_of("stalled") == "model"
    ok = ("completed", "", "none")
    errs = ("completed_with_errors", "e", "none")
    crash = ("agent_crash", "x", "model")
    assert _worse(ok, errs) == errs and _worse(errs, ok) == errs and _worse(crash, errs) == crash  # type: ignore[arg-type]
    assert exit_code([_record(1), _record(2, "loop")]) == 0
    assert exit_code([_record(1), _record(2, "running")]) == 130
    assert exit_code([_record(1, "infra_error"), _record(2, "running")]) == 1


def test_load_suite_file_resolves_relative_replay_script(tmp_path: Path) -> None:
    (tmp_path / "traj.json").write_text('{"name": "x", "phases": []}')
    (tmp_path / "s.toml").write_text(
        'name = "s"\n[[agents]]\nname = "codex"\n[[models]]\nid = "r"\nmodel = "m"\nprovider = "replay"\n'
        'replay_script = "traj.json"\n'
    )
    config = load_suite_file(tmp_path / "s.toml")
    assert config.models[0].replay_script == str((tmp_path / "traj.json").resolve())


def test_unknown_agent_and_wire_mismatch_are_config_errors(tmp_path: Path) -> None:
    from shipbench.config import ConfigError
    from shipbench.runner.plan import check_pairs

    suite, _ = _suite(tmp_path)
    check_pairs(suite)  # codex/claude x replay/openrouter: every pair is served
    bad, _ = _suite(
        tmp_path,
        agents=[{"name": "nope"}, {"name": "claude"}],
        models=[{"id": "g", "model": "gemini-2.5-pro", "provider": "google"}],
    )
    with pytest.raises(ConfigError) as info:
        check_pairs(bad)
    message = str(info.value)
    assert "unknown agent 'nope'; known agents: claude, codex, gemini, opencode" in message
    assert "agent 'claude' speaks anthropic_messages, but model 'g' (provider google) accepts only gemini" in message


def test_agent_settings_are_part_of_the_trial_id(tmp_path: Path) -> None:
    from shipbench.config import ConfigError
    from shipbench.runner.plan import check_pairs

    suite, task = _suite(tmp_path, agents=[{"name": "claude"}, {"name": "claude", "prompt_variant": "terse"}])
    check_pairs(suite)
    ids = [p.trial_id for p in expand_plans(suite, task, SuitePaths(tmp_path)) if p.repeat == 1 and p.model.id == "rp"]
    assert ids == ["tiny__claude__rp__r1", "tiny__claude-terse__rp__r1"]
    dup, _ = _suite(tmp_path, agents=[{"name": "codex"}, {"name": "codex"}])
    with pytest.raises(ConfigError, match="listed twice"):
        check_pairs(dup)


def test_two_configurations_never_share_a_trial_directory(tmp_path: Path) -> None:
    from shipbench.config import ConfigError

    suite, task = _suite(tmp_path, agents=[{"name": "codex"}], repeats=1, models=[
        {"id": "qwen:8b", "model": "q1", "provider": "replay"}, {"id": "qwen-8b", "model": "q2", "provider": "replay"},
    ])
    with pytest.raises(ConfigError) as info:
        expand_plans(suite, task, SuitePaths(tmp_path))
    assert str(info.value) == ("agent 'codex' model 'qwen:8b' and agent 'codex' model 'qwen-8b' would share the "
                               "trial directory tiny__codex__qwen-8b__r1: rename one model id or prompt variant")
