"""Build the `ApiIndex` of a gem from its `lib/` sources (the `shipbench api-index` verb).

Invariants: files are read in sorted order so the index is deterministic; a file that is unreadable,
binary, huge or unparsable is skipped and listed in `ApiIndex.skipped`, never raised; every
reopening of a constant merges into one `ClassDef`; constants are resolved lexically (innermost
namespace first) once every file is read.

Gem-specific extension point (data-driven, general): a method named `configuration_options` whose
last expression is a `%i[...]` literal contributes accessors to every class that defines an
attr-accessor macro named `option` (ruby_llm >= 1.14 registers provider keys this way at load time).
A macro's generated names come from name templates (`attr_reader key`, `define_method("#{key}=")`);
a call whose name cannot be read leaves a glob pattern instead (lookups unsure, never absent).
"""

from __future__ import annotations

import re
from pathlib import Path

from shipbench.audit.ruby.api_extract import Extraction, MacroTemplate, Pending
from shipbench.audit.ruby.api_model import ApiIndex, ClassDef, Location, MethodDef
from shipbench.audit.ruby.parse import parse_ruby

MAX_FILE_BYTES = 2_000_000
_DIR_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d+(?:\.[0-9A-Za-z]+)*)$")
_VERSION_CONST = re.compile(rb"""VERSION\s*=\s*['"]([^'"]+)['"]""")

# Bump whenever extraction changes what an index holds: on-disk caches are keyed by it.
EXTRACTOR_VERSION = 3


def name_version_from_dir(gem_dir: Path) -> tuple[str, str | None]:
    """`ruby_llm-1.14.1` -> ("ruby_llm", "1.14.1"); otherwise (dir name, version.rb VERSION or None)."""
    match = _DIR_VERSION.match(gem_dir.name)
    if match:
        return match["name"], match["version"]
    return gem_dir.name, version_from_source(gem_dir, gem_dir.name)


def version_from_source(gem_dir: Path, gem: str) -> str | None:
    for candidate in (
        gem_dir / "lib" / gem / "version.rb",
        gem_dir / "lib" / gem.replace("-", "/") / "version.rb",
    ):
        try:
            match = _VERSION_CONST.search(candidate.read_bytes()[:20000])
        except OSError:
            continue
        if match:
            return match.group(1).decode("utf-8", "replace")
    return None


def source_files(gem_dir: Path) -> list[Path]:
    """Ruby files under `lib/` (or the dir itself when it has no lib/), sorted, no symlink escapes."""
    base = gem_dir / "lib" if (gem_dir / "lib").is_dir() else gem_dir
    root = gem_dir.resolve()
    out = []
    for path in sorted(base.rglob("*.rb")):
        try:
            if path.is_file() and path.resolve().is_relative_to(root):
                out.append(path)
        except OSError:
            continue
    return out


def build_index(gem_dir: Path, gem: str | None = None, version: str | None = None) -> ApiIndex:
    dir_name, dir_version = name_version_from_dir(gem_dir)
    gem = gem or dir_name
    if version is None:
        version = dir_version if _DIR_VERSION.match(gem_dir.name) else version_from_source(gem_dir, gem)
    extraction = Extraction()
    skipped: list[str] = []
    files = source_files(gem_dir)
    for path in files:
        rel = path.relative_to(gem_dir).as_posix()
        reason = _add_file(extraction, path, rel)
        if reason:
            skipped.append(f"{rel}: {reason}")
    resolve(extraction)
    return ApiIndex(
        gem=gem,
        version=version,
        root=str(gem_dir),
        files=len(files) - len(skipped),
        classes=dict(sorted(extraction.classes.items())),
        skipped=skipped,
    )


def _add_file(extraction: Extraction, path: Path, rel: str) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if len(data) > MAX_FILE_BYTES:
        return f"too large ({len(data)} bytes)"
    if b"\0" in data[:8192]:
        return "binary"
    src = parse_ruby(rel, data)
    if src.has_error:
        return f"syntax error near line {src.first_error_line()}"
    try:
        extraction.add_file(src)
    except (RecursionError, ValueError, AssertionError) as exc:  # malformed shapes: degrade per file
        return f"not indexed ({type(exc).__name__})"
    return None


# ---- cross-file resolution ---------------------------------------------------------------------


def resolve_constant(classes: dict[str, ClassDef], nesting: tuple[str, ...], raw: str) -> str | None:
    """Ruby's lexical lookup: innermost namespace first, then the top level; None if not in the gem."""
    raw = raw.replace(" ", "")
    if raw.startswith("::"):
        return raw[2:] if raw[2:] in classes else None
    for outer in reversed(nesting):
        candidate = f"{outer}::{raw}"
        if candidate in classes:
            return candidate
    return raw if raw in classes else None


def resolve(extraction: Extraction) -> None:
    classes, pending = extraction.classes, extraction.pending
    _resolve_ancestors(classes, pending)
    _resolve_methods(classes, pending)
    _apply_macros(classes, pending)


def _resolve_ancestors(classes: dict[str, ClassDef], pending: Pending) -> None:
    for cls, attr, nesting, raw in pending.ancestors:
        found = resolve_constant(classes, nesting, raw)
        if found is None:
            continue
        stripped = raw.replace(" ", "").lstrip(":")
        if attr == "superclass":
            if cls.superclass == stripped and found != cls.name:
                cls.superclass = found
        else:
            names: list[str] = getattr(cls, attr)
            setattr(cls, attr, [found if n == stripped else n for n in names])


def _resolve_methods(classes: dict[str, ClassDef], pending: Pending) -> None:
    for md, owner, singleton, nesting, target in pending.forwards:
        if target.startswith(("#", ".")):
            sep = target[0] if not singleton else "."
            md.forwards_to = f"{owner}{sep}{target[1:]}"
            continue
        const, sep, meth = target.rpartition("#") if "#" in target else target.rpartition(".")
        found = resolve_constant(classes, nesting, const)
        md.forwards_to = f"{found or const.lstrip(':')}{sep}{meth}"
    for md, nesting, raw in pending.mixins:
        found = resolve_constant(classes, nesting, raw)
        stripped = raw.replace(" ", "").lstrip(":")
        if found is not None:
            md.mixes_in = [found if n == stripped else n for n in md.mixes_in]
    for md, nesting, raw in pending.returns:
        found = resolve_constant(classes, nesting, raw)
        if found is not None:
            md.returns = found


def _ancestor_names(classes: dict[str, ClassDef], name: str) -> list[str]:
    out, current = [], classes.get(name)
    while current is not None and current.name not in out:
        out.append(current.name)
        current = classes.get(current.superclass) if current.superclass else None
    return out


def _apply_macros(classes: dict[str, ClassDef], pending: Pending) -> None:
    for cls, macro, sym, where in pending.macro_calls:
        for ancestor in _ancestor_names(classes, cls.name):
            templates = pending.macro_defs.get(ancestor, {}).get(macro)
            if templates is not None:
                _generate(cls, sym, templates, where)
                break
    for owner, macros in pending.macro_defs.items():
        if "option" in macros and owner in classes:
            for names, where in pending.config_options:
                for name in names:
                    _generate(classes[owner], name, macros["option"], where)


def _generate(cls: ClassDef, name: str | None, templates: list[MacroTemplate], where: Location) -> None:
    """The methods one macro call defines; a name the extractor cannot read (a variable, an interpolation
    of something else) leaves a glob pattern, so lookups of such names are unsure, never absent."""
    for template, params in templates:
        if name is None or "*" in template:
            pattern = template.replace("{}", "*")
            if pattern not in cls.instance_patterns:
                cls.instance_patterns.append(pattern)
            continue
        method = template.replace("{}", name)
        cls.instance_methods.setdefault(
            method, MethodDef(name=method, params=list(params), location=where, origin="macro")
        )
