"""Task packs: a directory with task.toml, rubric.toml and a checks module.

Invariants: a pack is validated as a whole when loaded (schema, weights, every rule's dimension
exists, prompt files exist, the checks module imports and exposes CHECKS); any problem raises
`TaskPackError` with a message naming the file and the field, never a bare traceback.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tomllib
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shipbench.audit.models import Tier

if TYPE_CHECKING:
    from shipbench.audit.checks import Check

_M = TypeVar("_M", bound=BaseModel)
BUILTIN_DIR = Path(__file__).parent
BUILTIN_TASKS = {"rails-chat": BUILTIN_DIR / "rails_chat"}


class TaskPackError(Exception):
    """A task pack that cannot be used, with a message a user can act on."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phase(_Strict):
    id: str
    prompt: str


class Requirement(_Strict):
    id: str
    text: str


class RuleFact(_Strict):
    """A boolean fact of the audit JSON read off the rules that fired: true when at least one rule of
    `fired` fired (or `fired` is empty) and no rule of `absent` fired."""

    fired: list[str] = Field(default_factory=list)
    absent: list[str] = Field(default_factory=list)


class ValidationSpec(_Strict):
    """The task's runtime ladder (`shipbench validate`): stage ids of validate/registry.py, in order, and
    settings the stages read (timeouts, memory limit...)."""

    stages: list[str] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)


class TaskSpec(_Strict):
    id: str
    title: str
    checks: str = "checks"
    min_context_tokens: int = Field(default=32_768, gt=0)  # preflight refuses a model serving less
    phases: list[Phase] = Field(min_length=1)
    requirements: list[Requirement] = Field(min_length=1)
    rubyllm: dict[str, Any] = Field(default_factory=dict)
    facts: dict[str, RuleFact] = Field(default_factory=dict)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)


class Dimension(_Strict):
    id: str
    title: str
    weight: int = Field(gt=0)


class Rule(_Strict):
    dimension: str
    points: int = Field(gt=0)
    max_points: int | None = Field(default=None, gt=0)
    why: str

    @property
    def cap(self) -> int:
        return self.max_points or self.points


class SeverityClass(_Strict):
    """A defect class that caps what depends on it (design/rubric-scoring.md, "Severity classes").

    The class fires when hits of at least `min_triggers` distinct triggers are present, a trigger
    being one of `rules` (any hit of that rule) or one of `tags` (any hit a check tagged so).
    While it fires: each dimension in `caps` scores at most its cap; deductions of the `overflow`
    dimensions past their budget are taken from the total; the total is held below the next tier
    above `tier_ceiling`. Points taken for overflow and ceiling come from the `spill` dimensions,
    in that order. Every point removed is a `severity.<id>` finding with the triggers' evidence.
    """

    title: str
    why: str
    rules: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    min_triggers: int = Field(default=1, ge=1)
    caps: dict[str, int] = Field(default_factory=dict)
    tier_ceiling: Tier | None = None
    overflow: list[str] = Field(default_factory=list)
    spill: list[str] = Field(default_factory=list)


def tier_for(score: int, tiers: dict[str, int]) -> Tier:
    """The tier of `score` under thresholds {"A": a, "B": b, "C": c} (D below c)."""
    for name in ("A", "B", "C"):
        if score >= tiers[name]:
            return name
    return "D"


class Rubric(_Strict):
    tiers: dict[str, int]
    dimensions: list[Dimension] = Field(min_length=1)
    rules: dict[str, Rule] = Field(min_length=1)
    severity: dict[str, SeverityClass] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Rubric:
        total = sum(d.weight for d in self.dimensions)
        if total != 100:
            raise ValueError(f"dimension weights add up to {total}, not 100")
        ids = [d.id for d in self.dimensions]
        if len(set(ids)) != len(ids):
            raise ValueError("dimension ids are not unique")
        for rule_id, rule in self.rules.items():
            if rule.dimension not in ids:
                raise ValueError(f"rule {rule_id!r} names unknown dimension {rule.dimension!r}")
            if not rule_id.startswith(rule.dimension + "."):
                raise ValueError(f"rule {rule_id!r} must be prefixed by its dimension {rule.dimension!r}")
        for class_id, cls in self.severity.items():
            _check_severity(class_id, cls, ids, self.rules)
        if set(self.tiers) != {"A", "B", "C"}:
            raise ValueError("tiers must define exactly A, B and C thresholds (D is the rest)")
        if not self.tiers["A"] > self.tiers["B"] > self.tiers["C"] >= 0:
            raise ValueError("tier thresholds must satisfy A > B > C >= 0")
        return self

    def tier_max(self, tier: Tier) -> int:
        """The highest total that still lands in `tier`."""
        above = {"A": None, "B": "A", "C": "B", "D": "C"}[tier]
        return 100 if above is None else self.tiers[above] - 1

    def tier(self, score: int) -> Tier:
        return tier_for(score, self.tiers)

    @property
    def digest(self) -> str:
        """A short, stable digest of the rubric as loaded: any change to a rule, weight or tier changes it."""
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()[:16]

    def dimension(self, dim_id: str) -> Dimension:
        return next(d for d in self.dimensions if d.id == dim_id)


def _check_severity(class_id: str, cls: SeverityClass, dims: list[str], rules: dict[str, Rule]) -> None:
    where = f"severity class {class_id!r}"
    if not cls.rules and not cls.tags:
        raise ValueError(f"{where} has no trigger (rules or tags)")
    for rule_id in cls.rules:
        if rule_id not in rules:
            raise ValueError(f"{where} names unknown rule {rule_id!r}")
    if cls.min_triggers > len(cls.rules) + len(cls.tags):
        raise ValueError(f"{where} needs {cls.min_triggers} triggers but lists fewer")
    for dim_id, cap in cls.caps.items():
        if dim_id not in dims:
            raise ValueError(f"{where} caps unknown dimension {dim_id!r}")
        if cap < 0:
            raise ValueError(f"{where} caps {dim_id!r} below 0")
    for dim_id in (*cls.overflow, *cls.spill):
        if dim_id not in dims:
            raise ValueError(f"{where} names unknown dimension {dim_id!r}")
    if (cls.overflow or cls.tier_ceiling) and not cls.spill:
        raise ValueError(f"{where} has overflow or a tier ceiling but no spill dimensions to take points from")


class TaskPack:
    """A loaded, validated task pack."""

    def __init__(self, root: Path, spec: TaskSpec, rubric: Rubric) -> None:
        self.root = root
        self.spec = spec
        self.rubric = rubric

    @property
    def id(self) -> str:
        return self.spec.id

    def prompt(self, phase_id: str) -> str:
        phase = next(p for p in self.spec.phases if p.id == phase_id)
        return (self.root / phase.prompt).read_text(encoding="utf-8")

    @cached_property
    def checks(self) -> list[Check]:
        return _load_checks(self.root, self.spec.checks)


def load_task(name_or_path: str | Path) -> TaskPack:
    """Load a built-in task by id (`rails-chat`) or a task pack directory."""
    root = BUILTIN_TASKS.get(str(name_or_path)) or Path(name_or_path)
    if not root.is_dir():
        known = ", ".join(sorted(BUILTIN_TASKS))
        raise TaskPackError(f"unknown task {str(name_or_path)!r}: not a built-in ({known}) nor a directory")
    rubric = _parse(Rubric, root / "rubric.toml")
    spec = _parse(TaskSpec, root / "task.toml")
    for phase in spec.phases:
        if not (root / phase.prompt).is_file():
            raise TaskPackError(f"{root / 'task.toml'}: phase {phase.id!r} prompt {phase.prompt!r} not found")
    for fact, rule_fact in spec.facts.items():
        unknown = [r for r in (*rule_fact.fired, *rule_fact.absent) if r not in rubric.rules]
        if unknown:
            raise TaskPackError(f"{root / 'task.toml'}: facts.{fact} names unknown rule {unknown[0]!r}")
    _check_stages(root, spec.validation.stages)
    pack = TaskPack(root.resolve(), spec, rubric)
    _ = pack.checks  # import now so a broken module fails at load time
    return pack


def _check_stages(root: Path, stages: list[str]) -> None:
    from shipbench.validate.registry import STAGES  # the stage modules import the browser driver: only here

    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise TaskPackError(f"{root / 'task.toml'}: validation.stages names unknown stage {unknown[0]!r} "
                            f"(known: {', '.join(STAGES)})")
    if len(set(stages)) != len(stages):
        raise TaskPackError(f"{root / 'task.toml'}: validation.stages lists a stage twice")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise TaskPackError(f"{path}: missing (a task pack needs task.toml and rubric.toml)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TaskPackError(f"{path}: invalid TOML: {exc}") from exc


def _parse(model: type[_M], path: Path) -> _M:
    try:
        return model.model_validate(_read_toml(path))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise TaskPackError(f"{path}: {problems}") from exc


def _load_checks(root: Path, module_name: str) -> list[Check]:
    candidates = [root / module_name / "__init__.py", root / f"{module_name}.py"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise TaskPackError(f"{root}: checks module {module_name!r} not found (checks.py or checks/)")
    qualified = f"shipbench_taskpack_{abs(hash(str(root)))}_{module_name}"
    if root.resolve() == BUILTIN_TASKS["rails-chat"].resolve():
        qualified = "shipbench.tasks.rails_chat.checks"
    module = sys.modules.get(qualified)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            qualified,
            path,
            submodule_search_locations=[str(path.parent)] if path.name == "__init__.py" else None,
        )
        if spec is None or spec.loader is None:
            raise TaskPackError(f"{path}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[qualified]
            raise TaskPackError(f"{path}: checks module failed to import: {exc!r}") from exc
    checks = getattr(module, "CHECKS", None)
    if not isinstance(checks, Iterable) or not all(callable(c) for c in checks):
        raise TaskPackError(f"{path}: must define CHECKS, a list of check functions")
    return list(checks)
