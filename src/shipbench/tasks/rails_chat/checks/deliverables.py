"""rails-chat checks for the `deliverables` dimension: the artifacts the prompt asks for exist and work.

Invariants: every check reads `ctx.facts` or parsed sources of the app (under `facts.app_root`) and
never raises on a missing file; Gemfile-based rules (gem groups, stack and CI gems) are skipped when
there is no Gemfile at all, because `gemfile_missing` already covers that loss.
Accepted equivalents: turbo via `hotwire-rails`; stimulus via `hotwire-rails`, or `jsbundling-rails`
with `@hotwired/stimulus` in package.json; tailwind via `tailwindcss-ruby`, or `cssbundling-rails` with
`tailwindcss` in package.json; rubocop via any `rubocop`/`rubocop-*` gem. RSpec-only projects still
fire `tests_missing` (requirement 10 asks for Minitest), with a message saying so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

from shipbench.audit.checks import AuditContext, Check, Hit
from shipbench.audit.facts.model import GemDecl
from shipbench.audit.models import Evidence
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import (
    app_ruby,
    bare_statements,
    call_arguments,
    calls,
    class_name,
    is_plain_string,
    writes,
)

API_KEY_VAR = "OPENROUTER_API_KEY"
LLM_GEM = "ruby_llm"
PRODUCTION_GROUPS = frozenset({"default", "production"})
DEV_TEST_GROUPS = frozenset({"development", "test"})
ROUTE_METHODS = (
    "root",
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "match",
    "resources",
    "resource",
    "mount",
    "draw",
)
ENV_READERS = frozenset({"fetch", "[]", "key?", "has_key?", "include?", "dig", "values_at"})
_YAML_ENV_RE = re.compile(r"ENV(?:\.fetch\(|\[)\s*['\"]" + API_KEY_VAR + r"['\"]")


# ---------------------------------------------------------------- app layout


def check_nested_app_dir(ctx: AuditContext) -> Iterator[Hit]:
    if not ctx.facts.nested_app_dir:
        return
    root = ctx.facts.app_root or "."
    anchor = ctx.app_path("config/application.rb")
    evidence = ctx.whole_file(anchor if ctx.files.exists(anchor) else root, f"app root is {root}/")
    yield Hit(
        "deliverables.nested_app_dir",
        f"the Rails app lives in the subdirectory {root}/ instead of the workspace root",
        (evidence,),
    )


def check_ruby_version_pin(ctx: AuditContext) -> Iterator[Hit]:
    if ctx.facts.ruby_version_pin is None:
        yield Hit(
            "deliverables.ruby_version_pin_missing",
            "Ruby version is not pinned (no .ruby-version, .tool-versions or mise.toml)",
            (ctx.absent(".ruby-version / .tool-versions / mise.toml"),),
        )


# ---------------------------------------------------------------- Gemfile


def check_gemfile(ctx: AuditContext) -> Iterator[Hit]:
    facts = ctx.facts
    if facts.gemfile is None:
        yield Hit("deliverables.gemfile_missing", "no Gemfile at the app root", (ctx.absent("Gemfile"),))
        return
    if facts.gemfile_lock is None:
        yield Hit(
            "deliverables.gemfile_lock_missing",
            "no Gemfile.lock next to the Gemfile: dependency versions are not locked",
            (ctx.absent("Gemfile.lock"),),
        )


def check_ruby_llm_gem(ctx: AuditContext) -> Iterator[Hit]:
    facts = ctx.facts
    if facts.gemfile is None:
        return
    decl = facts.gems.get(LLM_GEM)
    if decl is None:
        yield Hit(
            "deliverables.ruby_llm_gem_missing",
            f"gem '{LLM_GEM}' not in Gemfile",
            (ctx.whole_file(facts.gemfile, f"no gem '{LLM_GEM}'"),),
        )
        return
    problem = _production_load_problem(decl, _explicit_require(ctx, LLM_GEM))
    if problem:
        yield Hit(
            "deliverables.ruby_llm_not_in_production",
            f"gem '{LLM_GEM}' {problem}: RubyLLM is undefined in production",
            (ctx.at_line(decl.path, decl.line),),
        )


def _production_load_problem(decl: GemDecl, explicitly_required: bool) -> str:
    """Why Bundler.require(*Rails.groups) in production would not load the gem ('' if it would)."""
    groups = set(decl.groups)
    in_production = not groups or bool(groups & PRODUCTION_GROUPS)
    if groups and groups <= DEV_TEST_GROUPS:
        # the production image bundles `--without development test`: an explicit require cannot help
        return f"is only in the {'/'.join(sorted(groups))} group(s)"
    if not in_production and not explicitly_required:
        return f"is only in the {'/'.join(sorted(groups))} group(s), which Rails does not require in production"
    if decl.require is False and not explicitly_required:
        return "has `require: false` and is never required explicitly"
    return ""


def _explicit_require(ctx: AuditContext, gem: str) -> bool:
    """`require "gem"` (or a file of the gem) somewhere in the app's own Ruby."""
    for parsed in app_ruby(ctx):
        for site in calls(parsed, "require"):
            args = call_arguments(site.node)
            if args and is_plain_string(args[0]):
                path = parsed.text(args[0]).strip("'\"")
                if path == gem or path.startswith(gem + "/"):
                    return True
    return False


def _package_json_deps(ctx: AuditContext) -> set[str]:
    source = ctx.app_file("package.json")
    if source is None:
        return set()
    try:
        data = json.loads(source.read_text())
    except (ValueError, OSError):
        return set()
    deps: set[str] = set()
    if isinstance(data, dict):
        for section in ("dependencies", "devDependencies"):
            value = data.get(section)
            if isinstance(value, dict):
                deps.update(str(k) for k in value)
    return deps


def _stack_providers(gems: set[str], npm: set[str]) -> dict[str, bool]:
    """Whether each stack gem (or an accepted equivalent, see module docstring) is present."""
    return {
        "turbo-rails": bool(gems & {"turbo-rails", "hotwire-rails"}),
        "stimulus-rails": bool(gems & {"stimulus-rails", "hotwire-rails"})
        or ("jsbundling-rails" in gems and "@hotwired/stimulus" in npm),
        "tailwindcss-rails": bool(gems & {"tailwindcss-rails", "tailwindcss-ruby"})
        or ("cssbundling-rails" in gems and bool(npm & {"tailwindcss", "@tailwindcss/cli"})),
    }


def check_stack_gems(ctx: AuditContext) -> Iterator[Hit]:
    gemfile = ctx.facts.gemfile
    if gemfile is None:
        return
    present = _stack_providers(set(ctx.facts.gems), _package_json_deps(ctx))
    for gem, ok in present.items():
        if not ok:
            yield Hit(
                "deliverables.stack_gem_missing",
                f"gem '{gem}' not in Gemfile",
                (ctx.whole_file(gemfile, f"no gem '{gem}'"),),
                key=gem,
            )


def _ci_tools(gems: set[str]) -> dict[str, bool]:
    return {
        "brakeman": "brakeman" in gems,
        "rubocop": any(g == "rubocop" or g.startswith("rubocop-") for g in gems),
        "simplecov": "simplecov" in gems,
        "bundler-audit": "bundler-audit" in gems,
    }


def check_ci_gems(ctx: AuditContext) -> Iterator[Hit]:
    gemfile = ctx.facts.gemfile
    if gemfile is None:
        return
    for gem, ok in _ci_tools(set(ctx.facts.gems)).items():
        if not ok:
            yield Hit(
                "deliverables.ci_gem_missing",
                f"gem '{gem}' not in Gemfile",
                (ctx.whole_file(gemfile, f"no gem '{gem}'"),),
                key=gem,
            )


def check_forbidden_frameworks(ctx: AuditContext) -> Iterator[Hit]:
    loads = ctx.facts.frameworks_loaded
    if not loads:
        return
    names = sorted({x.detail for x in loads if x.detail}) or ["a forbidden framework"]
    evidence = tuple(ctx.at_line(x.path, x.line) for x in loads)
    yield Hit(
        "deliverables.forbidden_framework_loaded",
        f"{', '.join(names)} loaded although the task forbids ActiveRecord, ActionMailer and ActiveJob",
        evidence,
    )


# ---------------------------------------------------------------- Docker, compose, README


def check_docker(ctx: AuditContext) -> Iterator[Hit]:
    facts = ctx.facts
    if not facts.dockerfile:
        yield Hit("deliverables.dockerfile_missing", "no Dockerfile", (ctx.absent("Dockerfile"),))
    elif facts.dockerfile_placeholder_reasons:
        path = facts.dockerfile_path or ctx.app_path("Dockerfile")
        reasons = "; ".join(facts.dockerfile_placeholder_reasons)
        yield Hit(
            "deliverables.dockerfile_placeholder",
            f"Dockerfile is a placeholder: {reasons}",
            (ctx.whole_file(path, reasons),),
        )


def check_compose(ctx: AuditContext) -> Iterator[Hit]:
    facts = ctx.facts
    if not facts.docker_compose:
        yield Hit(
            "deliverables.compose_missing",
            "no docker-compose file (compose.yaml / docker-compose.yml)",
            (ctx.absent("docker-compose.yml / compose.yaml"),),
        )
        return
    path = facts.compose_path or ctx.app_path("docker-compose.yml")
    if facts.compose_errors:
        errors = "; ".join(facts.compose_errors)
        yield Hit(
            "deliverables.compose_invalid",
            f"compose file is invalid: {errors}",
            (ctx.whole_file(path, errors),),
        )
    elif not facts.compose_services:
        yield Hit(
            "deliverables.compose_invalid",
            "compose file defines no service",
            (ctx.whole_file(path, "no services"),),
        )


def check_container_supervision(ctx: AuditContext) -> Iterator[Hit]:
    """A container nobody checks or restarts: no HEALTHCHECK (Dockerfile or compose) and no restart
    policy in compose. Silent when the Dockerfile or compose file is missing or broken (other rules)."""
    facts = ctx.facts
    if not facts.dockerfile or facts.dockerfile_placeholder_reasons:
        return
    compose_ok = facts.docker_compose and facts.compose_services and not facts.compose_errors
    if not facts.dockerfile_healthcheck_line and not facts.compose_healthchecks:
        yield Hit(
            "deliverables.no_healthcheck",
            "no container healthcheck: neither the Dockerfile (HEALTHCHECK) nor compose (healthcheck:) "
            "says when the app is up, so a wedged server is never noticed",
            (ctx.absent("HEALTHCHECK in the Dockerfile or healthcheck: in compose"),),
        )
    if compose_ok and not facts.compose_restart_policies:
        path = facts.compose_path or ctx.app_path("docker-compose.yml")
        yield Hit(
            "deliverables.no_restart_policy",
            "no compose service has a restart policy: a crashed app stays down",
            (ctx.whole_file(path, "no restart: policy on any service"),),
        )


def check_readme(ctx: AuditContext) -> Iterator[Hit]:
    facts = ctx.facts
    if not facts.readme:
        yield Hit("deliverables.readme_missing", "no README", (ctx.absent("README.md"),))
        return
    path = facts.readme_path or ctx.app_path("README.md")
    if facts.readme_stock_template:
        yield Hit(
            "deliverables.readme_stock",
            "README is the stock `rails new` template",
            (ctx.whole_file(path, "stock rails new README"),),
        )
    elif not facts.readme_setup_instructions:
        yield Hit(
            "deliverables.readme_no_setup",
            f"README has no setup instructions (no commands, no mention of {API_KEY_VAR})",
            (ctx.whole_file(path, "no setup instructions"),),
        )


# ---------------------------------------------------------------- routes, controllers, views, tests


def check_routes(ctx: AuditContext) -> Iterator[Hit]:
    rel = ctx.app_path("config/routes.rb")
    parsed = ctx.parsed(rel)
    if parsed is None:
        yield Hit("deliverables.routes_missing", "no config/routes.rb", (ctx.absent("config/routes.rb"),))
        return
    routes = [s for s in calls(parsed, *ROUTE_METHODS) if not s.receiver or s.receiver == "self"]
    if parsed.has_error:  # cannot tell; the parse issue is recorded by the context
        return
    if not routes and not any(bare_statements(parsed, "root")):
        yield Hit(
            "deliverables.routes_missing",
            "config/routes.rb declares no route",
            (ctx.whole_file(rel, "no route declared"),),
        )


def _controller_classes(ctx: AuditContext) -> Iterator[tuple[ParsedSource, Node, str]]:
    for parsed in ctx.ruby_sources("app/controllers"):
        if "/concerns/" in parsed.rel:
            continue
        for klass in of_type(parsed.root, "class"):
            yield parsed, klass, class_name(parsed, klass).rsplit("::", 1)[-1]


def check_controllers(ctx: AuditContext) -> Iterator[Hit]:
    names = [name for _, _, name in _controller_classes(ctx)]
    if not any(name.endswith("Controller") and name != "ApplicationController" for name in names):
        detail = "only ApplicationController" if names else "no controller class"
        yield Hit(
            "deliverables.controllers_missing",
            f"no controller beyond ApplicationController ({detail} under app/controllers)",
            (ctx.absent("a controller under app/controllers"),),
        )


def check_views(ctx: AuditContext) -> Iterator[Hit]:
    layouts = ctx.app_path("app/views/layouts/")
    templates = [f for f in ctx.app_files("app/views") if not f.rel.startswith(layouts) and not f.name.startswith(".")]
    if not templates:
        yield Hit(
            "deliverables.views_missing",
            "no view template under app/views beyond the layouts",
            (ctx.absent("a template under app/views"),),
        )


def _is_minitest_file(name: str) -> bool:
    return name.endswith("_test.rb") or (name.startswith("test_") and name.endswith(".rb") and name != "test_helper.rb")


def check_tests_exist(ctx: AuditContext) -> Iterator[Hit]:
    if any(_is_minitest_file(f.name) for f in ctx.app_files("test", ".rb")):
        return
    specs = [f for f in ctx.app_files("spec", ".rb") if f.name.endswith("_spec.rb")]
    message = (
        f"no Minitest test files under test/ (only {len(specs)} RSpec spec(s); the task asks for Minitest)"
        if specs
        else "no test files under test/ (no *_test.rb)"
    )
    evidence: tuple[Evidence, ...] = (ctx.absent("test/**/*_test.rb"),)
    yield Hit("deliverables.tests_missing", message, evidence)


# ---------------------------------------------------------------- environment


def _is_env(parsed: ParsedSource, node: Node | None) -> bool:
    return node is not None and parsed.text(node).lstrip(":") == "ENV"


def _key_constants(sources: list[ParsedSource]) -> set[str]:
    """Constants bound to the variable name itself (`KEY_VAR = "OPENROUTER_API_KEY"`)."""
    names: set[str] = set()
    for parsed in sources:
        for w in writes(parsed):
            value = w.value
            is_key = value is not None and is_plain_string(value) and parsed.text(value).strip("'\"") == API_KEY_VAR
            if w.kind == "assign" and w.target.type == "constant" and is_key:
                names.add(parsed.text(w.target))
    return names


def _names_key(parsed: ParsedSource, args: Iterable[Node], constants: set[str]) -> bool:
    first = next(iter(args), None)
    if first is None:
        return False
    text = parsed.text(first)
    if first.type in ("constant", "scope_resolution"):
        return text.rsplit("::", 1)[-1] in constants
    return is_plain_string(first) and text.strip("'\":") == API_KEY_VAR


def _reads_api_key(parsed: ParsedSource, constants: set[str]) -> bool:
    for node in of_type(parsed.root, "element_reference"):
        obj = node.child_by_field_name("object")
        if _is_env(parsed, obj) and _names_key(parsed, node.named_children[1:], constants):
            return True
    for site in calls(parsed, *ENV_READERS):
        recv = site.node.child_by_field_name("receiver")
        if _is_env(parsed, recv) and _names_key(parsed, call_arguments(site.node), constants):
            return True
    return False


def _yaml_reads_api_key(ctx: AuditContext) -> bool:
    """config/*.yml files are ERB-rendered by Rails: `<%= ENV["KEY"] %>` there is a read too."""
    for source in ctx.app_files("config", ".yml", ".yaml"):
        try:
            if _YAML_ENV_RE.search(source.read_text()):
                return True
        except OSError:
            continue
    return False


def check_api_key_env(ctx: AuditContext) -> Iterator[Hit]:
    sources = app_ruby(ctx)
    constants = _key_constants(sources)
    if any(_reads_api_key(p, constants) for p in sources) or _yaml_reads_api_key(ctx):
        return
    yield Hit(
        "deliverables.api_key_env_missing",
        f'{API_KEY_VAR} is never read from the environment (no ENV["{API_KEY_VAR}"] / ENV.fetch)',
        (ctx.absent(f'ENV["{API_KEY_VAR}"] in app/, config/ or lib/'),),
    )


CHECKS: list[Check] = [
    check_nested_app_dir,
    check_gemfile,
    check_ruby_llm_gem,
    check_stack_gems,
    check_ci_gems,
    check_forbidden_frameworks,
    check_docker,
    check_compose,
    check_container_supervision,
    check_readme,
    check_routes,
    check_controllers,
    check_views,
    check_tests_exist,
    check_api_key_env,
    check_ruby_version_pin,
]
