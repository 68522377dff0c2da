"""Facts about a project that need no judgement: what files exist, what the Gemfile declares, what
the linters say. Task checks read these; they never re-parse the same files themselves.

Invariants: facts are pure data (pydantic, JSON-serialisable); paths are relative to the audited
directory (not the app root); lines are 1-based; a fact that could not be established is None or
empty, never a guess.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Fact(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GemDecl(_Fact):
    """One `gem` line of a Gemfile."""

    name: str
    path: str
    line: int
    groups: list[str] = Field(default_factory=list, description="[] means the default group")
    require: bool | str = Field(default=True, description="False for `require: false`, a string for a path")
    version: list[str] = Field(default_factory=list)

    @property
    def in_production(self) -> bool:
        """Bundler loads it in production: no group, or the default/production group among its groups."""
        return not self.groups or bool({"default", "production"} & set(self.groups))


class Located(_Fact):
    """A fact with a place: a requirement line, a secret, a lint message."""

    path: str
    line: int
    detail: str = ""


class LintIssue(_Fact):
    path: str
    line: int
    code: str
    level: str
    message: str


class ProjectFacts(_Fact):
    is_rails: bool = False
    app_root: str = Field(default="", description="'' when the app is at the audited directory's root")
    nested_app_dir: bool = False

    gemfile: str | None = None
    gems: dict[str, GemDecl] = Field(default_factory=dict)
    gemfile_lock: str | None = None
    locked_versions: dict[str, str] = Field(default_factory=dict)
    ruby_version_pin: str | None = Field(default=None, description="file that pins Ruby (.ruby-version, mise...)")

    frameworks_loaded: list[Located] = Field(
        default_factory=list, description="active_record / action_mailer / active_job loads (detail names it)"
    )

    dockerfile: bool = False
    dockerfile_path: str | None = None
    dockerfile_placeholder_reasons: list[str] = Field(default_factory=list)
    hadolint: list[LintIssue] = Field(default_factory=list)
    hadolint_available: bool = False
    dockerfile_healthcheck_line: int | None = Field(default=None, description="line of the Dockerfile's HEALTHCHECK")

    docker_compose: bool = False
    compose_path: str | None = None
    compose_services: list[str] = Field(default_factory=list)
    compose_errors: list[str] = Field(default_factory=list)
    compose_healthchecks: list[str] = Field(default_factory=list, description="services with a healthcheck")
    compose_restart_policies: list[str] = Field(default_factory=list, description="services with a restart policy")

    readme: bool = False
    readme_path: str | None = None
    readme_stock_template: bool = False
    readme_setup_instructions: bool = False

    secrets: list[Located] = Field(default_factory=list, description="detail is the kind of secret")
    committed_env_files: list[str] = Field(default_factory=list, description=".env files with values")
    master_key: str | None = None

    fact_errors: list[str] = Field(
        default_factory=list, description="what could not be established and why (unreadable files, tools)"
    )
