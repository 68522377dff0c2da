"""Can a test double's `def` stand in for the real method? Provable signature incompatibilities only.

Two lies are reported: the double runs a block (yield, block_given?, a used &blk) where the real method
neither yields nor takes &block (the block passes in tests and never runs in production), and arities
no call can satisfy on both sides (Ruby 3 rules; braceless pairs become a positional Hash only for a
method without keywords). Invariants: `...`, unresolved forwarding or a splat on the relevant side is
always compatible; growing a call never fixes the reported problems, so each is certain.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipbench.audit.ruby.api_model import MethodDef, Param
from shipbench.audit.ruby.api_params import params_of
from shipbench.audit.ruby.fake_shapes import own_nodes
from shipbench.audit.ruby.parse import Node, ParsedSource
from shipbench.audit.ruby.resolve_api import Effective

UNSURE_ORIGINS = frozenset({"delegator", "define_method", "macro", "core"})
BLOCK_CHECKS = frozenset({"block_given?", "iterator?"})
INFINITY = 1 << 30


@dataclass(frozen=True)
class Arity:
    """One side's parameters, summarised for Ruby 3 argument binding."""

    required: int
    most: int  # INFINITY with *rest
    keywords: frozenset[str]  # key + keyreq names
    required_keywords: frozenset[str]
    any_keyword: bool  # **rest
    no_keywords: bool  # **nil

    @property
    def takes_keywords(self) -> bool:
        return bool(self.keywords) or self.any_keyword

    @staticmethod
    def of(params: list[Param]) -> Arity:
        kinds = [p.kind for p in params]
        return Arity(
            required=kinds.count("req"),
            most=INFINITY if "rest" in kinds else kinds.count("req") + kinds.count("opt"),
            keywords=frozenset(p.name for p in params if p.kind in ("key", "keyreq") and p.name),
            required_keywords=frozenset(p.name for p in params if p.kind == "keyreq" and p.name),
            any_keyword="keyrest" in kinds,
            no_keywords="nokey" in kinds,
        )


def signature_problem(parsed: ParsedSource, fake_def: Node, real: MethodDef, eff: Effective) -> str:
    """Why no call works the same on the double and the real method ('' when compatible or unsure)."""
    if real.origin in UNSURE_ORIGINS or eff.params is None:
        return ""
    fake_params = params_of(parsed, fake_def)
    if any(p.kind == "fwd" for p in fake_params) or any(p.kind == "fwd" for p in eff.params):
        return ""
    real_block = eff.takes_block or real.yields or any(p.kind == "block" for p in real.params)
    if not real_block and runs_block(parsed, fake_def, fake_params):
        return (
            "runs the block it is given, but the real method never yields and takes no &block "
            "(a block passed to it runs in tests and is silently ignored in production)"
        )
    return arity_problem(Arity.of(fake_params), Arity.of(eff.params))


def runs_block(parsed: ParsedSource, method: Node, params: list[Param]) -> bool:
    """`yield`, `block_given?`, or a use of the block parameter (named or anonymous `&`)."""
    if own_nodes(method, "yield"):
        return True
    block_names = {p.name for p in params if p.kind == "block" and p.name}
    for ident in own_nodes(method, "identifier"):
        text = parsed.text(ident)
        if text in BLOCK_CHECKS or text in block_names:
            return True
    anonymous = any(p.kind == "block" and not p.name for p in params)
    return anonymous and any(not n.named_children for n in own_nodes(method, "block_argument"))


def arity_problem(fake: Arity, real: Arity) -> str:
    """A problem every call accepted by the double has on the real method, or ''."""
    return (
        _fake_keyword_rejected(fake, real)
        or _too_many_positionals(fake, real)
        or _too_few_positionals(fake, real)
        or _real_keyword_unreachable(fake, real)
    )


def _fake_keyword_rejected(fake: Arity, real: Arity) -> str:
    for key in sorted(fake.required_keywords):
        if real.any_keyword or key in real.keywords:
            continue
        if real.no_keywords:
            return f"requires keyword {key}:, but the real method accepts no keywords"
        if real.keywords:
            accepted = ", ".join(f"{k}:" for k in sorted(real.keywords))
            return f"requires keyword {key}:, but the real method accepts only {accepted}"
        if fake.required + 1 > real.most:  # the pairs arrive as one more positional Hash
            return f"requires keyword {key}:, but the real method takes no keywords and at most {real.most} argument(s)"
    return ""


def _too_many_positionals(fake: Arity, real: Arity) -> str:
    least = fake.required
    if least and not fake.takes_keywords and not fake.no_keywords and real.takes_keywords:
        least -= 1  # the double's last positional may be braceless pairs, keywords for the real method
    if least > real.most:
        return f"requires {fake.required} positional arguments, but the real method accepts at most {real.most}"
    return ""


def _too_few_positionals(fake: Arity, real: Arity) -> str:
    if fake.most >= INFINITY:
        return ""
    most = fake.most
    if fake.takes_keywords and not real.takes_keywords and not real.no_keywords:
        most += 1  # keywords given to the double are one positional Hash for the real method
    if most < real.required:
        return f"accepts at most {fake.most} positional arguments, but the real method requires {real.required}"
    return ""


def _real_keyword_unreachable(fake: Arity, real: Arity) -> str:
    if fake.any_keyword or not (fake.keywords or fake.no_keywords):
        return ""  # **rest takes anything; without keywords, pairs reach the double as a Hash
    missing = sorted(real.required_keywords - fake.keywords)
    return f"cannot be called with keyword {missing[0]}:, which the real method requires" if missing else ""


def format_params(params: list[Param]) -> str:
    """A parameter list as Ruby-like text (defaults are not in the index: shown as `?`)."""
    parts: list[str] = []
    for p in params:
        name = p.name or ""
        parts.append(
            {
                "req": name,
                "opt": f"{name} = ?",
                "rest": f"*{name}",
                "keyreq": f"{name}:",
                "key": f"{name}: ?",
                "keyrest": f"**{name}",
                "nokey": "**nil",
                "block": f"&{name}",
                "fwd": "...",
            }[p.kind]
        )
    return ", ".join(parts)
