"""Severity classes: caps, overflow into the total, tier ceilings, triggers by rule and by tag, and
the invariant that every point removed is a `severity.<id>` finding in the dimension it came from."""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pytest
from tests.conftest import write_tree

from shipbench.audit.checks import Hit
from shipbench.audit.engine import audit_project
from shipbench.audit.models import DimensionScore, Evidence
from shipbench.audit.scoring import score_with_severity
from shipbench.tasks import load_task
from shipbench.tasks.pack import BUILTIN_DIR, Dimension, Rubric, Rule, SeverityClass, TaskPackError

EV = (Evidence(path="app/services/x.rb", line=4, snippet="RubyLLM::Client.new"),)


def _rubric(**severity: SeverityClass) -> Rubric:
    return Rubric(
        tiers={"A": 80, "B": 60, "C": 40},
        dimensions=[
            Dimension(id="core", title="Core", weight=40),
            Dimension(id="tests", title="Tests", weight=30),
            Dimension(id="ui", title="UI", weight=20),
            Dimension(id="prod", title="Prod", weight=10),
        ],
        rules={
            "core.broken": Rule(dimension="core", points=10, why="w"),
            "core.minor": Rule(dimension="core", points=2, why="w"),
            "tests.weak": Rule(dimension="tests", points=3, why="w"),
            "prod.xss": Rule(dimension="prod", points=6, why="w"),
            "prod.csrf": Rule(dimension="prod", points=6, why="w"),
            "prod.secret": Rule(dimension="prod", points=6, why="w"),
        },
        severity=severity,
    )


def _dim(dims: list[DimensionScore], dim_id: str) -> DimensionScore:
    return next(d for d in dims if d.id == dim_id)


def _consistent(dims: list[DimensionScore], total: int) -> None:
    for d in dims:
        assert d.max - d.score == -sum(f.points for f in d.findings), d.id
        assert d.score >= 0
    assert total == sum(d.score for d in dims)


DEAD = SeverityClass(
    title="dead", why="w", rules=["core.broken"], tags=["core_path"], caps={"tests": 5, "ui": 12},
    tier_ceiling="C", spill=["ui", "prod", "core"],
)  # fmt: skip


def test_class_caps_dependent_dimensions_with_severity_findings() -> None:
    rubric = _rubric(dead=DEAD)
    dims, total, tier, fired = score_with_severity(rubric, [Hit("core.broken", "m", EV)])
    assert fired == ["dead"]
    tests = _dim(dims, "tests")
    assert tests.score == 5
    assert [(f.rule, f.points) for f in tests.findings] == [("severity.dead", -25)]
    assert tests.findings[0].evidence == list(EV)  # the trigger's evidence
    # 30 core + 5 tests + 12 ui + 10 prod = 57: already within the C ceiling
    assert (total, tier) == (57, "C")
    _consistent(dims, total)


def test_tier_ceiling_spills_from_the_listed_dimensions_in_order() -> None:
    rubric = _rubric(dead=DEAD.model_copy(update={"caps": {}, "tier_ceiling": "C"}))
    dims, total, tier, _ = score_with_severity(rubric, [Hit("core.broken", "m", EV)])
    assert (total, tier) == (59, "C")  # 90 -> held at the top of C
    assert _dim(dims, "ui").score == 0  # 20 taken from ui first
    assert _dim(dims, "prod").score == 0  # then 10 from prod
    assert _dim(dims, "core").score == 30 - 1  # the last point from core
    assert _dim(dims, "tests").score == 30  # not in spill: untouched
    _consistent(dims, total)


def test_a_tag_on_one_hit_triggers_but_the_same_rule_untagged_does_not() -> None:
    tagged = SeverityClass(title="t", why="w", tags=["core_path"], caps={"tests": 0})
    rubric = _rubric(t=tagged)
    _d, _t, _tier, fired = score_with_severity(rubric, [Hit("core.minor", "m", EV)])
    assert fired == []
    dims, _t, _tier, fired = score_with_severity(rubric, [Hit("core.minor", "m", EV, tags=frozenset({"core_path"}))])
    assert fired == ["t"]
    assert _dim(dims, "tests").score == 0


def test_tags_survive_merging_of_hits_with_one_key() -> None:
    rubric = _rubric(t=SeverityClass(title="t", why="w", tags=["core_path"], caps={"tests": 0}))
    hits = [
        Hit("core.minor", "m", EV, key="k"),
        Hit("core.minor", "m", (Evidence(path="b.rb", line=2),), key="k", tags=frozenset({"core_path"})),
    ]
    _d, _t, _tier, fired = score_with_severity(rubric, hits)
    assert fired == ["t"]


def test_min_triggers_counts_distinct_rules_and_overflow_reaches_the_total() -> None:
    sec = SeverityClass(
        title="sec", why="w", rules=["prod.xss", "prod.csrf", "prod.secret"], min_triggers=2,
        overflow=["prod"], spill=["ui", "core"],
    )  # fmt: skip
    rubric = _rubric(sec=sec)
    one = [Hit("prod.xss", "m", EV, key="a"), Hit("prod.xss", "m", EV, key="b")]
    dims, total, _tier, fired = score_with_severity(rubric, one)
    assert fired == [] and total == 100 - 6  # one rule twice (per-rule cap 6) is one trigger
    two = [Hit("prod.xss", "m", EV), Hit("prod.csrf", "m", EV)]
    dims, total, _tier, fired = score_with_severity(rubric, two)
    assert fired == ["sec"]
    assert _dim(dims, "prod").score == 0
    ui = _dim(dims, "ui")
    assert ui.score == 18 and ui.findings[0].rule == "severity.sec"  # the 2 points past prod's 10
    assert total == 88
    _consistent(dims, total)


def test_order_of_hits_does_not_change_the_result() -> None:
    rubric = _rubric(dead=DEAD)
    hits = [
        Hit("core.broken", "m", EV),
        Hit("tests.weak", "m", EV),
        Hit("prod.xss", "m", EV),
        Hit("core.minor", "m", EV, tags=frozenset({"core_path"})),
    ]
    first = score_with_severity(rubric, hits)
    for seed in range(5):
        shuffled = hits[:]
        random.Random(seed).shuffle(shuffled)
        assert score_with_severity(rubric, shuffled) == first


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"rules": ["core.nope"]}, "unknown rule"),
        ({"caps": {"nowhere": 1}}, "unknown dimension"),
        ({"spill": []}, "no spill"),
        ({"rules": [], "tags": []}, "no trigger"),
        ({"min_triggers": 5}, "needs 5 triggers"),
    ],
)
def test_broken_severity_classes_are_refused_with_the_field(update: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _rubric(dead=SeverityClass(**{**DEAD.model_dump(), **update}))


def test_rails_chat_declares_the_issue_classes() -> None:
    rubric = load_task("rails-chat").rubric
    assert {"core_path_dead", "security_critical", "history_discarded"} <= set(rubric.severity)
    assert rubric.severity["core_path_dead"].tier_ceiling == "C"
    assert rubric.severity["security_critical"].min_triggers == 2


def test_audit_json_carries_the_glance_facts_and_the_fired_classes(tmp_path: Path) -> None:
    """A stateless app whose model output goes out raw and whose CSRF is off: the facts say so."""
    project = write_tree(
        tmp_path / "p",
        {
            "Gemfile": 'source "https://rubygems.org"\ngem "rails"\ngem "ruby_llm"\n',
            "config/application.rb": "module App\n  class Application < Rails::Application\n  end\nend\n",
            "config/routes.rb": "Rails.application.routes.draw do\n  post '/ask', to: 'talk#create'\nend\n",
            "app/controllers/talk_controller.rb": (
                "class TalkController < ApplicationController\n  skip_forgery_protection\n\n"
                "  def create\n    @answer = RubyLLM.chat.ask(params[:q]).content\n"
                "    render html: @answer.html_safe\n  end\nend\n"
            ),
        },
    )
    result = audit_project(project, "rails-chat")
    facts = result.facts
    assert facts["csrf_disabled"] is True and facts["multi_turn"] is False
    assert facts["system_prompt"] is False and facts["rescue_around_llm_call"] is False
    assert facts["bypasses_ruby_llm"] is False and facts["committed_env_file"] is False
    assert facts["stimulus_controllers"] == 0 and facts["tests_exercise_llm_path"] is False
    assert "history_discarded" in facts["severity"]  # type: ignore[operator]
    assert next(d for d in result.dimensions if d.id == "persistence").score == 0


def test_a_fact_naming_an_unknown_rule_is_refused(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(BUILTIN_DIR / "rails_chat", pack)
    with (pack / "task.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[facts.bogus]\nfired = ["rubyllm.nope"]\n')
    with pytest.raises(TaskPackError, match=re.escape("facts.bogus names unknown rule 'rubyllm.nope'")):
        load_task(pack)
