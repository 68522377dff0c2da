"""Do a call site's arguments fit a method's parameters? Ruby 3 argument semantics, statically.

Invariants: "bad" is answered only when Ruby would certainly raise ArgumentError (or silently drop a
block) for every runtime value of the arguments; splats (`*a`, `**h`, `...`) and non-symbol keys make
the count unknowable, and then the answer is "ok" when the method could accept, else "unknown".
Braceless `key: v` pairs passed to a method without keyword parameters become one positional Hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shipbench.audit.ruby.api_model import Param
from shipbench.audit.ruby.parse import Node, ParsedSource

Status = Literal["ok", "bad", "unknown"]


@dataclass(frozen=True)
class CallArgs:
    """What a call site passes, as far as can be told from the syntax."""

    positional: int = 0
    keywords: tuple[str, ...] = ()  # symbol keys of braceless pairs, in order
    odd_keys: bool = False  # braceless pairs with non-symbol keys ("a" => 1)
    splat: bool = False  # *args
    double_splat: bool = False  # **opts
    forward_all: bool = False  # f(...)
    block: bool = False  # do..end, {..}, &blk, anonymous &

    @property
    def uncountable(self) -> bool:
        return self.splat or self.double_splat or self.forward_all


@dataclass(frozen=True)
class ArgCheck:
    status: Status
    detail: str = ""


def read_args(parsed: ParsedSource, call: Node) -> CallArgs:
    """The arguments of a `call` node (with or without parentheses) and whether a block is passed."""
    positional, keywords = 0, []
    odd = splat = dsplat = fwd = False
    block = call.child_by_field_name("block") is not None
    args = call.child_by_field_name("arguments")
    for arg in args.named_children if args is not None else []:
        kind = arg.type
        if kind == "pair":
            key = arg.child_by_field_name("key")
            name = _symbol_key(parsed, key) if key is not None else None
            if name is None:
                odd = True
            else:
                keywords.append(name)
        elif kind == "splat_argument":
            splat = True
        elif kind == "hash_splat_argument":
            dsplat = True
        elif kind == "forward_argument":
            fwd = True
        elif kind == "block_argument":
            block = True
        elif kind != "comment":
            positional += 1
    return CallArgs(positional, tuple(keywords), odd, splat, dsplat, fwd, block)


def _symbol_key(parsed: ParsedSource, key: Node) -> str | None:
    text = parsed.text(key)
    if key.type == "hash_key_symbol":
        return text
    if key.type == "simple_symbol":
        return text.lstrip(":")
    return None


def check_args(params: list[Param], args: CallArgs) -> ArgCheck:
    """Whether `args` fit `params` (the effective parameter list, forwarding already followed)."""
    kinds: list[str] = [p.kind for p in params]
    if "fwd" in kinds:
        return ArgCheck("ok")
    takes_kw = any(k in ("key", "keyreq", "keyrest") for k in kinds)
    positional = args.positional
    keywords = args.keywords
    if (keywords or args.odd_keys) and not takes_kw:
        if "nokey" in kinds:
            return ArgCheck("bad", "no keywords accepted")
        positional += 1  # braceless pairs become one positional Hash
        keywords = ()
    problem = _positional_problem(kinds, positional, args) or _keyword_problem(params, keywords, args)
    if args.odd_keys and takes_kw and "keyrest" not in kinds:
        return ArgCheck("unknown", "non-Symbol keys passed as keywords")
    if args.uncountable:
        return ArgCheck("unknown", f"cannot count splatted arguments: {problem}") if problem else ArgCheck("ok")
    return ArgCheck("bad", problem) if problem else ArgCheck("ok")


def _positional_problem(kinds: list[str], given: int, args: CallArgs) -> str:
    required = kinds.count("req")
    optional = kinds.count("opt")
    if "rest" in kinds:
        if given < required and not args.splat:
            return f"wrong number of arguments (given {given}, expected {required}+)"
        return ""
    if given > required + optional:
        expected = str(required) if not optional else f"{required}..{required + optional}"
        return f"wrong number of arguments (given {given}, expected {expected})"
    if given < required and not args.splat:
        expected = str(required) if not optional else f"{required}..{required + optional}"
        return f"wrong number of arguments (given {given}, expected {expected})"
    return ""


def _keyword_problem(params: list[Param], keywords: tuple[str, ...], args: CallArgs) -> str:
    if not keywords and not any(p.kind == "keyreq" for p in params):
        return ""
    allowed = {p.name for p in params if p.kind in ("key", "keyreq") and p.name}
    if not any(p.kind == "keyrest" for p in params):
        unknown = [k for k in keywords if k not in allowed]
        if unknown:
            label = "unknown keyword" if len(unknown) == 1 else "unknown keywords"
            return f"{label}: {', '.join(unknown)}"
    if args.double_splat:
        return ""
    missing = [p.name for p in params if p.kind == "keyreq" and p.name and p.name not in keywords]
    if missing:
        label = "missing keyword" if len(missing) == 1 else "missing keywords"
        return f"{label}: {', '.join(missing)}"
    return ""


def block_ignored(method: str, takes_block: bool, args: CallArgs) -> ArgCheck:
    """A block given to a method that neither yields nor takes &block never runs."""
    if args.block and not takes_block:
        return ArgCheck("bad", f"block is silently ignored: {method} never yields")
    return ArgCheck("ok")
