"""Suite configuration: what `shipbench run suite.toml` reads, validated as a whole.

Invariants: a suite that loads is runnable as far as static checks go (known agents, known
providers, every model's upstream speaks each selected agent's wire API, positive limits); keys are
never stored in the config, only the names of the environment variables holding them; every name that
becomes a path component (suite name, agent, model and subagent ids, prompt variant) is a single safe
component; any problem raises `ConfigError` naming the file and field, never a traceback.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from shipbench.agents.base import WireApi
from shipbench.store.layout import component_problem

Provider = Literal["openrouter", "openai", "anthropic", "google", "openai_compatible", "replay"]

# Which wire APIs each upstream accepts; the proxy forwards a request in the wire the agent speaks.
PROVIDER_WIRES: dict[str, frozenset[WireApi]] = {
    "openrouter": frozenset({"openai_chat", "openai_responses", "anthropic_messages"}),
    "openai": frozenset({"openai_chat", "openai_responses"}),
    "anthropic": frozenset({"anthropic_messages"}),
    "google": frozenset({"gemini"}),
    "openai_compatible": frozenset({"openai_chat", "openai_responses"}),
    "replay": frozenset({"openai_chat", "openai_responses", "anthropic_messages", "gemini"}),
}
DEFAULT_BASE_URLS: dict[str, str] = {
    "openrouter": "https://openrouter.ai/api",
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com",
}
DEFAULT_KEY_ENV: dict[str, str] = {
    "openrouter": "OPENROUTER_API_KEY",
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GEMINI_API_KEY",
}


class ConfigError(Exception):
    """A suite file that cannot be used, with a message naming the file and field."""


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _component(value: str) -> str:
    problem = component_problem(value)
    if problem:
        raise ValueError(f"{value!r} is not a safe path component (it {problem})")
    return value


def _suite_name(value: str) -> str:
    _component(value)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", value):
        raise ValueError(f"{value!r} may only use letters, digits, '.', '_' and '-'")
    return value


Component = Annotated[str, AfterValidator(_component)]


class Limits(_C):
    phase_wall_s: float = Field(default=5400, gt=0)
    idle_s: float = Field(default=360, gt=0)  # no event and no file change for this long -> stalled
    loop_repeats: int = Field(default=6, ge=2)  # same tool call (or A-B cycle) this many times -> loop
    max_consecutive_errors: int = Field(default=10, ge=1)
    min_tokens_per_s: float = Field(default=0, ge=0)  # 0 disables the throughput watchdog
    grace_s: float = Field(default=5, ge=0)  # SIGTERM -> SIGKILL delay
    max_output_bytes: int = Field(default=64 * 1024 * 1024, gt=0)  # per stream per phase, beyond it: truncated


class Budget(_C):
    max_tokens: int | None = Field(default=None, gt=0)
    max_usd: float | None = Field(default=None, gt=0)


class SandboxConfig(_C):
    """Where agents run (see shipbench.sandbox): `auto` is bwrap when it works here, else none (recorded)."""

    backend: Literal["auto", "bwrap", "none"] = "auto"
    network: Literal["open", "proxy-only"] = "open"  # proxy-only: only the metering proxy is reachable (bwrap)


class Pricing(_C):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cache_read_per_mtok: float = Field(default=0, ge=0)
    cache_write_per_mtok: float = Field(default=0, ge=0)


class SubagentConfig(_C):
    name: Component  # agent configuration file name (e.g. .claude/agents/<name>.md)
    model: str
    description: str = "Implementation helper"
    prompt: str = ""


ServingKind = Literal["llama.cpp", "llama-cpp-python", "llama-swap", "ollama", "vllm", "lmstudio"]


class ServingConfig(_C):
    """A self-hosted model server (see shipbench.serving): what it is, so the harness can ask it the right
    questions (health, served context, tokenizer) and keep it loaded."""

    kind: ServingKind
    warmup: bool = True  # load the model (one tiny request) before phase 1, timed apart from the trial
    keep_alive: str = "-1"  # ollama: how long the model stays loaded ("-1" = until the server stops)
    num_ctx: int | None = Field(default=None, gt=0)  # ollama: the context to load the model with


class ModelConfig(_C):
    id: Component  # label used in trial ids and reports
    model: str  # model id sent upstream (e.g. anthropic/claude-sonnet-4.5)
    provider: Provider
    base_url: str | None = None  # required for openai_compatible
    api_key_env: str | None = None  # defaults per provider; none for replay/local servers without keys
    pricing: Pricing | None = None  # override the dated price table
    subagents: list[SubagentConfig] = Field(default_factory=list)
    concurrency: int | None = Field(default=None, ge=1)  # max trials at once against this upstream
    replay_script: str | None = None  # provider=replay: a trajectory file (default: the task's bundled one)
    context_window: int | None = Field(default=None, gt=0)  # tokens; default: the served context, else 200K
    max_output_tokens: int | None = Field(default=None, gt=0)  # tokens per answer; default: the agent's own
    serving: ServingConfig | None = None  # a self-hosted server (openai_compatible): its kind and settings

    def key_env(self) -> str | None:
        return self.api_key_env or DEFAULT_KEY_ENV.get(self.provider)

    def upstream_url(self) -> str | None:
        return self.base_url or DEFAULT_BASE_URLS.get(self.provider)


class AgentConfig(_C):
    name: Component  # registry name: opencode | codex | claude | gemini
    binary: str | None = None  # path override; default: found on PATH or in the project's tool dir
    continue_session: bool = True  # later phases continue the previous session when the CLI supports it
    prompt_variant: Component | None = None  # task prompt variant (e.g. "delegate"): <stem>.<variant>.md


class ExecutorConfig(_C):
    """Where trials run: `local` (this machine, --jobs at once) or `ray` (one Ray task per trial, see
    shipbench.cluster); the resources are what each trial asks of the node that takes it."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = None  # ray: the cluster to join (None: RAY_ADDRESS, else a local Ray started for the run)
    cpus_per_trial: float = Field(default=1.0, gt=0)
    gpus_per_trial: float = Field(default=0.0, ge=0)  # e.g. 1 for a model served on the trial's own node
    memory_gb: float | None = Field(default=None, gt=0)
    resources: dict[str, float] = Field(default_factory=dict)  # custom node resources, e.g. {"agent_slot": 1}
    max_retries: int = Field(default=1, ge=0)  # a trial whose node was lost runs again elsewhere this many times


class ValidationConfig(_C):
    """The runtime ladder after the last phase (`shipbench validate`, the task's [validation] stages)."""

    enabled: bool = True
    network: bool = False  # may deps download missing gems (the app itself never has network)


class SuiteConfig(_C):
    name: Annotated[str, AfterValidator(_suite_name)]  # the results directory <out>/<name>
    task: str = "rails-chat"
    repeats: int = Field(default=1, ge=1)
    jobs: int = Field(default=1, ge=1)
    phases: list[str] | None = None  # subset of the task's phases (default: all)
    agents: list[AgentConfig] = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    limits: Limits = Field(default_factory=Limits)
    budget: Budget = Field(default_factory=Budget)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    provider_concurrency: dict[str, int] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        ids = [m.id for m in models]
        if len(set(ids)) != len(ids):
            raise ValueError(f"model ids must be unique, got {ids}")
        for m in models:
            if m.provider == "openai_compatible" and not m.base_url:
                raise ValueError(f"model {m.id!r}: provider openai_compatible needs base_url")
            if m.serving is not None and m.provider != "openai_compatible":
                raise ValueError(f"model {m.id!r}: [models.serving] describes a self-hosted server: it needs "
                                 f"provider = \"openai_compatible\" (not {m.provider})")
        return models


def load_suite(path: Path) -> SuiteConfig:
    """Read and validate a suite file; every failure is one ConfigError line naming the file."""
    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        return SuiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {validation_problems(exc)}") from exc


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such suite file") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory, not a suite file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the suite file: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from exc


def validation_problems(exc: ValidationError) -> str:
    """One line: `field.path: message` per error (no path for a whole-document error), without pydantic's
    "Value error, " prefix."""
    problems: list[str] = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {msg}" if where else msg)
    return "; ".join(problems)
