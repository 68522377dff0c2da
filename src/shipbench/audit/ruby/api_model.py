"""The public API of a Ruby gem as data: classes/modules, methods with exact parameters, where each
is defined. Produced by `api_index.build_index`, consumed by `verify`.

Invariants: constant names are fully qualified without a leading `::` ("RubyLLM::Chat");
every method and class records the file (relative to the gem root) and 1-based line that defines
it; lookups never answer "absent" for a class that is open (method_missing) or that inherits from
something outside the index: they answer `None` with `certain=False` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ParamKind = Literal[
    "req",  # a
    "opt",  # a = 1
    "rest",  # *a or anonymous *
    "keyreq",  # a:
    "key",  # a: 1
    "keyrest",  # **a or anonymous **
    "nokey",  # **nil
    "block",  # &a or anonymous &
    "fwd",  # ... (forwards everything)
]
Visibility = Literal["public", "protected", "private"]
Origin = Literal["def", "alias", "attr", "delegator", "define_method", "struct", "module_function", "macro", "core"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(_M):
    path: str
    line: int


class Param(_M):
    kind: ParamKind
    name: str | None = None


class MethodDef(_M):
    name: str
    params: list[Param] = Field(default_factory=list)
    visibility: Visibility = "public"
    singleton: bool = False
    location: Location | None = None
    origin: Origin = "def"
    returns_self: bool = Field(default=False, description="body ends in `self` (the fluent with_* chain)")
    yields: bool = Field(default=False, description="takes &block or calls yield/block_given?")
    forwards_to: str | None = Field(
        default=None,
        description="callee whose parameters apply when params are (...)/*args,**kw: 'Chat#initialize', "
        "'Chat.new', 'Chat#ask'",
    )
    returns: str | None = Field(default=None, description="class name the method returns, when evident")
    mixes_in: list[str] = Field(
        default_factory=list,
        description="modules a class-level macro includes into the class that calls it "
        "(`acts_as_chat` -> RubyLLM::ActiveRecord::ChatMethods)",
    )
    adds: list[str] = Field(
        default_factory=list,
        description="instance methods such a macro generates (associations, define_method, delegate, "
        "class_attribute): a name, or '{kw=default}' for a name given by a keyword parameter",
    )
    passes_through: bool = Field(
        default=False,
        description="the body hands every parameter unchanged, in order, to forwards_to "
        "(`def param(name, **options) = Parameter.new(name, **options)`): the callee's parameters apply",
    )


class ClassDef(_M):
    name: str
    kind: Literal["class", "module"]
    superclass: str | None = None
    includes: list[str] = Field(default_factory=list)
    extends: list[str] = Field(default_factory=list)
    prepends: list[str] = Field(default_factory=list)
    instance_methods: dict[str, MethodDef] = Field(default_factory=dict)
    singleton_methods: dict[str, MethodDef] = Field(default_factory=dict)
    instance_patterns: list[str] = Field(
        default_factory=list, description="glob patterns of dynamically defined names, e.g. '*?'"
    )
    singleton_patterns: list[str] = Field(default_factory=list)
    constants: dict[str, Location] = Field(default_factory=dict)
    private_constants: list[str] = Field(default_factory=list)
    open_instance: bool = Field(default=False, description="defines method_missing for instances")
    open_singleton: bool = Field(default=False, description="defines self.method_missing")
    locations: list[Location] = Field(default_factory=list)


class ApiIndex(_M):
    gem: str
    version: str | None
    root: str
    files: int = 0
    classes: dict[str, ClassDef] = Field(default_factory=dict)
    skipped: list[str] = Field(default_factory=list, description="'path: reason' for files not indexed")


@dataclass(frozen=True)
class Lookup:
    """Answer to "does C have method m?": the definition if found, and whether 'absent' is certain."""

    method: MethodDef | None
    owner: str | None
    certain: bool
    via_pattern: str | None = None
