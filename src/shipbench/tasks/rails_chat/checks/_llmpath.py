"""Where the app talks to the LLM, and which classes, controllers and routes lead there.

Invariants: the LLM path starts at app/ and lib/ files that mention `RubyLLM` (or post to a known LLM
endpoint) and grows, to a fixed point, by files that reference a class defined on it; controllers
are named by their singular resource (`chats_controller.rb` -> "chat"); routes come from
config/routes.rb by syntax only and a route that cannot be read is simply not known.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing, of_type
from shipbench.tasks.rails_chat.checks._common import (
    LLM_CONSTANT,
    call_arguments,
    class_name,
    def_name,
    is_controller,
    method_name,
    references_llm,
)
from shipbench.tasks.rails_chat.checks._llm_flow import send_sites

LLM_ENDPOINT_MARKERS = (b"openrouter.ai", b"api.openai.com", b"api.anthropic.com", b"/chat/completions")
VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "match"})
MAX_ROUNDS = 8


@dataclass
class LlmPath:
    files: list[str] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)  # full names and their `::` suffixes
    controllers: set[str] = field(default_factory=set)  # singular resource names
    routes: dict[str, str] = field(default_factory=dict)  # "/chat/:id" -> controller resource
    helpers: dict[str, str] = field(default_factory=dict)  # route `as:` name -> controller resource
    actions: dict[str, str] = field(default_factory=dict)  # "post /chat/:id" or "post helper" -> explicit action
    llm_actions: dict[str, set[str]] = field(default_factory=dict)  # resource -> actions that reach the LLM

    @property
    def exists(self) -> bool:
        return bool(self.files)

    def names_class(self, ref: str) -> bool:
        ref = ref.lstrip(":")
        return ref in self.classes and not ref.startswith(LLM_CONSTANT)


def singular(word: str) -> str:
    word = word.lower()
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def constant_chains(root: Node) -> Iterator[Node]:
    """Top-most constant / `A::B` chains under `root`."""
    for node in of_type(root, "constant", "scope_resolution"):
        parent = node.parent
        if parent is not None and parent.type == "scope_resolution":
            continue
        yield node


def defined_names(parsed: ParsedSource) -> set[str]:
    """Full names of classes/modules a file defines, with each `::` suffix (`Llm::Client`, `Client`)."""
    names: set[str] = set()
    for node in of_type(parsed.root, "class", "module"):
        if not node.is_named:  # the `class` / `module` keyword tokens share the type name
            continue
        parts = [class_name(parsed, node)]
        outer = enclosing(node, "class", "module")
        while outer is not None:
            parts.insert(0, class_name(parsed, outer))
            outer = enclosing(outer, "class", "module")
        full = "::".join(p for p in parts if p).lstrip(":")
        segments = full.split("::")
        names.update("::".join(segments[i:]) for i in range(len(segments)))
    return names


def _uses_llm(parsed: ParsedSource) -> bool:
    return references_llm(parsed) or any(m in parsed.source for m in LLM_ENDPOINT_MARKERS)


def build_llm_path(ctx: AuditContext) -> LlmPath:
    app = ctx.ruby_sources("app") + ctx.ruby_sources("lib")
    on_path = {p.rel: p for p in app if _uses_llm(p)}
    path = LlmPath()
    for parsed in on_path.values():
        path.classes |= defined_names(parsed)
    for _ in range(MAX_ROUNDS):
        grown = [
            p for p in app if p.rel not in on_path and any(path.names_class(p.text(n)) for n in constant_chains(p.root))
        ]
        if not grown:
            break
        for parsed in grown:
            on_path[parsed.rel] = parsed
            path.classes |= defined_names(parsed)
    path.files = sorted(on_path)
    path.controllers = {controller_resource(p.rel) for p in on_path.values() if is_controller(p)}
    sends = [(site.parsed.rel, site.node.start_byte) for site in send_sites(ctx)]
    sending = sending_methods(list(on_path.values()), sends)
    triggering = _triggers_callbacks(list(on_path.values()), sending)
    for parsed in on_path.values():
        if is_controller(parsed):
            path.llm_actions[controller_resource(parsed.rel)] = _llm_actions(parsed, path, sending, triggering)
    routes = ctx.app_file("config/routes.rb")
    parsed_routes = ctx.parsed(routes.rel) if routes is not None else None
    if parsed_routes is not None:
        _read_routes(parsed_routes, path)
    return path


REST_ACTIONS = {
    "get": {"index", "show", "new", "edit"},
    "head": {"index", "show", "new", "edit"},
    "post": {"create"},
    "put": {"update"},
    "patch": {"update"},
    "delete": {"destroy"},
}


ASYNC_ALIASES = {"perform_later": "perform", "perform_now": "perform", "perform_async": "perform", "new": "initialize"}
CALLBACK_MACROS = (
    "after_create",
    "after_create_commit",
    "after_commit",
    "after_save",
    "before_create",
    "after_update_commit",
)


HTTP_CLIENT_ROOTS = ("Net::HTTP", "Faraday", "HTTParty", "RestClient", "Excon", "HTTPX", "Typhoeus", "OpenAI::Client")


def _direct_llm(parsed: ParsedSource, node: Node) -> bool:
    """The code under `node` names RubyLLM or an LLM endpoint URL, or (in a file that talks to an LLM
    endpoint) makes an HTTP request."""
    if any(parsed.text(n).lstrip(":") == LLM_CONSTANT for n in of_type(node, "constant")):
        return True
    if any(m.decode() in parsed.text(node) for m in LLM_ENDPOINT_MARKERS):
        return True
    if not any(m in parsed.source for m in LLM_ENDPOINT_MARKERS):
        return False
    return any(parsed.text(n).lstrip(":").startswith(HTTP_CLIENT_ROOTS) for n in constant_chains(node))


def sending_methods(files: list[ParsedSource], sends: list[tuple[str, int]] | None = None) -> set[str]:
    """Names of methods, across the LLM path's files, that reach the LLM: they hold a chat send
    (`sends`: file and byte of each), name RubyLLM or an LLM endpoint, or call (by name, transitively)
    one that does; a job's `perform_later` reaches `perform`, `K.new` reaches `initialize`."""
    at = set(sends or [])
    bodies = [(p, def_name(p, m), m) for p in files for m in of_type(p.root, "method", "singleton_method")]
    sending = {
        name
        for p, name, m in bodies
        if _direct_llm(p, m) or any(rel == p.rel and m.start_byte <= b < m.end_byte for rel, b in at)
    }
    for _ in range(MAX_ROUNDS):
        grown = {
            name
            for p, name, m in bodies
            if name not in sending and any(_called(p, c) in sending for c in of_type(m, "call", "identifier"))
        }
        if not grown:
            break
        sending |= grown
    return sending


def _called(parsed: ParsedSource, node: Node) -> str:
    name = method_name(parsed, node) if node.type == "call" else parsed.text(node)
    return ASYNC_ALIASES.get(name, name)


def _triggers_callbacks(files: list[ParsedSource], sending: set[str]) -> set[str]:
    """Classes whose model callbacks reach the LLM: creating or saving one sends a turn."""
    out: set[str] = set()
    for parsed in files:
        for call in of_type(parsed.root, "call"):
            if method_name(parsed, call) in CALLBACK_MACROS and any(
                parsed.text(a).lstrip(":") in sending for a in call_arguments(call)
            ):
                out |= defined_names(parsed)
    return out


def _llm_actions(parsed: ParsedSource, path: LlmPath, sending: set[str], triggering: set[str]) -> set[str]:
    """Public methods of a controller that reach the LLM: directly, by calling a method that does
    (its own or another class's, by name), by touching a model whose callbacks do, through the
    controller's own methods they call (transitively), or through a before_action callback that does."""
    methods = {def_name(parsed, m): m for m in of_type(parsed.root, "method")}

    def reaches(m: Node) -> bool:
        if _direct_llm(parsed, m) or any(_called(parsed, c) in sending for c in of_type(m, "call")):
            return True
        return any(parsed.text(n).lstrip(":") in triggering for n in constant_chains(m))

    reaching = {name for name, m in methods.items() if reaches(m)}
    for _ in range(MAX_ROUNDS):
        grown = {
            name
            for name, m in methods.items()
            if name not in reaching
            and any(
                method_name(parsed, c) in reaching or parsed.text(c) in reaching
                for c in of_type(m, "call", "identifier")
            )
        }
        if not grown:
            break
        reaching |= grown
    callbacks = {
        parsed.text(a).lstrip(":")
        for c in of_type(parsed.root, "call")
        if method_name(parsed, c) in ("before_action", "around_action", "prepend_before_action")
        for a in call_arguments(c)
        if a.type == "simple_symbol"
    }
    if callbacks & reaching:
        return set(methods) | {"*"}  # a callback reaching the LLM runs before every action it guards
    return reaching


def controller_resource(rel: str) -> str:
    tail = rel.rsplit("/controllers/", 1)[-1] if "/controllers/" in rel else rel
    return singular(tail.removesuffix("_controller.rb").rsplit("/", 1)[-1])


# ---------------------------------------------------------------- routes


def _read_routes(parsed: ParsedSource, path: LlmPath) -> None:
    for call in of_type(parsed.root, "call"):
        if call.child_by_field_name("receiver") is not None:
            continue
        verb = method_name(parsed, call)
        strings = _string_args(parsed, call)
        target = _route_target(parsed, call)
        if target is None:
            continue
        action = _route_action(parsed, call)
        if verb == "root":
            path.routes["/"] = target
            path.actions["get /"] = action
        elif verb in VERBS and strings:
            path.routes[normalise(strings[0])] = target
            path.actions[f"{verb} {normalise(strings[0])}"] = action
        alias = _pair_value(parsed, call, "as")
        if alias:
            path.helpers[alias.lstrip(":")] = target
            path.actions[f"{verb if verb != 'root' else 'get'} {alias.lstrip(':')}"] = action


def _string_args(parsed: ParsedSource, call: Node) -> list[str]:
    args = call.child_by_field_name("arguments")
    out: list[str] = []
    for arg in args.named_children if args is not None else []:
        if arg.type == "string":
            out.append(parsed.text(arg).strip("\"'"))
        elif arg.type == "pair":  # `"chat" => "chats#create"`
            key = arg.child_by_field_name("key")
            if key is not None and key.type == "string":
                out.append(parsed.text(key).strip("\"'"))
    return out


def _route_target(parsed: ParsedSource, call: Node) -> str | None:
    """The controller resource of `to: "c#a"`, `"path" => "c#a"`, `root "c#a"` or `controller: :c`."""
    args = call.child_by_field_name("arguments")
    for node in of_type(args, "string") if args is not None else []:
        text = parsed.text(node).strip("\"'")
        if "#" in text and "/" not in text.split("#", 1)[1]:
            return singular(text.split("#", 1)[0].rsplit("/", 1)[-1])
    controller = _pair_value(parsed, call, "controller")
    return singular(controller.lstrip(":").rsplit("/", 1)[-1]) if controller else None


def _route_action(parsed: ParsedSource, call: Node) -> str:
    """The action of `to: "c#a"` / `"path" => "c#a"` / `action: :a` ('' when the route does not say)."""
    args = call.child_by_field_name("arguments")
    for node in of_type(args, "string") if args is not None else []:
        text = parsed.text(node).strip("\"'")
        if "#" in text and "/" not in text.split("#", 1)[1]:
            return text.split("#", 1)[1]
    return _pair_value(parsed, call, "action").lstrip(":")


def _pair_value(parsed: ParsedSource, call: Node, key: str) -> str:
    args = call.child_by_field_name("arguments")
    for pair in of_type(args, "pair") if args is not None else []:
        k, v = pair.child_by_field_name("key"), pair.child_by_field_name("value")
        if k is not None and v is not None and parsed.text(k).strip(":\"'") == key:
            return parsed.text(v).strip("\"'")
    return ""


def normalise(route: str) -> str:
    route = route.split("?", 1)[0].split("(", 1)[0]
    return "/" + route.strip("/")


def route_matches(pattern: str, actual: str) -> bool:
    want, got = pattern.strip("/").split("/"), actual.strip("/").split("/")
    return len(want) == len(got) and all(w == g or w.startswith((":", "*")) for w, g in zip(want, got, strict=True))


# ---------------------------------------------------------------- requests in tests


def stops_at_blank_guard(path: LlmPath, parsed: ParsedSource, call: Node, test_class: str) -> bool:
    """A request that would run an LLM action but sends only blank input (so stops at its guard)."""
    return _only_blank_input(parsed, call) and request_reaches(path, parsed, call, test_class, blank_ok=True)


def request_reaches(path: LlmPath, parsed: ParsedSource, call: Node, test_class: str, blank_ok: bool = False) -> bool:
    """Does this `get/post/... target` (or controller-test `post :create`) run a controller action that
    reaches the LLM, with input that gets past a blank guard?"""
    args = call.child_by_field_name("arguments")
    first = args.named_children[0] if args is not None and args.named_children else None
    if first is None or (_only_blank_input(parsed, call) and not blank_ok):
        return False
    verb = method_name(parsed, call)
    if first.type in ("simple_symbol", "symbol"):
        resource = class_resource(test_class)
        return bool(resource) and _action_reaches(path, resource, {parsed.text(first).lstrip(":")})
    if first.type == "string":
        return _path_reaches(path, _literal_prefix(parsed, first), verb)
    name = method_name(parsed, first) if first.type == "call" else parsed.text(first)
    if first.type in ("identifier", "call") and name.endswith(("_path", "_url")):
        return _helper_reaches(path, name.rsplit("_", 1)[0], verb)
    return False


def request_resources(path: LlmPath, parsed: ParsedSource, call: Node) -> set[str]:
    """The controller resources a `get/post/... target` may hit (route helpers, paths, route table)."""
    first = call_arguments(call)[0] if call_arguments(call) else None
    if first is None:
        return set()
    if first.type == "string":
        route = normalise(_literal_prefix(parsed, first))
        for pattern, target in path.routes.items():
            if route_matches(pattern, route):
                return {target}
        return {singular(seg) for seg in route.strip("/").split("/") if seg}
    name = method_name(parsed, first) if first.type == "call" else parsed.text(first)
    if first.type in ("identifier", "call") and name.endswith(("_path", "_url")):
        helper = name.rsplit("_", 1)[0]
        if helper in path.helpers:
            return {path.helpers[helper]}
        if helper == "root":
            return {path.routes["/"]} if "/" in path.routes else set()
        return {singular(t) for t in helper.split("_") if t not in ("new", "edit")}
    return set()


def _action_reaches(path: LlmPath, resource: str, actions: set[str]) -> bool:
    if resource not in path.controllers:
        return False
    reaching = path.llm_actions.get(resource)
    if reaching is None or "*" in reaching:
        return True
    return bool(actions & reaching) or not actions


def _verb_actions(verb: str, explicit: str) -> set[str]:
    return {explicit} if explicit else set(REST_ACTIONS.get(verb, set()))


def _helper_reaches(path: LlmPath, helper: str, verb: str = "") -> bool:
    if helper in path.helpers:
        explicit = path.actions.get(f"{verb} {helper}", "")
        return _action_reaches(path, path.helpers[helper], _verb_actions(verb, explicit))
    if helper == "root":
        target = path.routes.get("/")
        return target is not None and _action_reaches(path, target, _verb_actions(verb, path.actions.get("get /", "")))
    tokens = [t for t in helper.split("_") if t not in ("new", "edit")]
    return any(_action_reaches(path, singular(t), _verb_actions(verb, "")) for t in tokens)


def _path_reaches(path: LlmPath, url: str, verb: str = "") -> bool:
    route = normalise(url)
    for pattern, target in path.routes.items():
        declared_for_verb = f"{verb} {pattern}" in path.actions
        if route_matches(pattern, route) and (declared_for_verb or not _declared(path, pattern)):
            return _action_reaches(path, target, _verb_actions(verb, path.actions.get(f"{verb} {pattern}", "")))
    segments = [seg for seg in route.strip("/").split("/") if seg]
    return any(_action_reaches(path, singular(seg), _verb_actions(verb, "")) for seg in segments)


def _declared(path: LlmPath, pattern: str) -> bool:
    """Some explicit route declares this path (for another verb when the caller's is not among them)."""
    return any(key.endswith(f" {pattern}") for key in path.actions)


BLANK_VALUES = ("nil", "false")


def _only_blank_input(parsed: ParsedSource, call: Node) -> bool:
    """The request sends `params:` whose every leaf value is an empty or whitespace-only string (or nil):
    it stops at any guard on blank input before the LLM."""
    args = call.child_by_field_name("arguments")
    params: Node | None = None
    for pair in (a for a in (args.named_children if args is not None else []) if a.type == "pair"):
        key = pair.child_by_field_name("key")
        if key is not None and parsed.text(key).strip(":\"'") == "params":
            params = pair.child_by_field_name("value")
    if params is None or params.type != "hash":
        return False
    leaves = [
        v
        for pair in of_type(params, "pair")
        if (v := pair.child_by_field_name("value")) is not None and v.type != "hash"
    ]
    return bool(leaves) and all(
        v.type in BLANK_VALUES or (v.type == "string" and not parsed.text(v).strip("\"' \t\n")) for v in leaves
    )


def _literal_prefix(parsed: ParsedSource, string: Node) -> str:
    out = ""
    for child in string.named_children:
        if child.type != "string_content":
            break
        out += parsed.text(child)
    return out


def class_resource(test_class: str) -> str:
    """`ChatsControllerTest` / `Api::ChatsController` -> "chat"; "" for a non-controller name."""
    snake = ""
    for i, ch in enumerate(test_class.rsplit("::", 1)[-1]):
        snake += ("_" if i and ch.isupper() else "") + ch.lower()
    snake = snake.removesuffix("_test").removesuffix("_spec")
    return singular(snake.removesuffix("_controller")) if snake.endswith("_controller") else ""
