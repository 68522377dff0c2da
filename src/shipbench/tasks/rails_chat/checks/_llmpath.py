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
    class_name,
    is_controller,
    method_name,
    references_llm,
)

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
    routes = ctx.app_file("config/routes.rb")
    parsed_routes = ctx.parsed(routes.rel) if routes is not None else None
    if parsed_routes is not None:
        _read_routes(parsed_routes, path)
    return path


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
        if verb == "root":
            path.routes["/"] = target
        elif verb in VERBS and strings:
            path.routes[normalise(strings[0])] = target
        alias = _pair_value(parsed, call, "as")
        if alias:
            path.helpers[alias.lstrip(":")] = target


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


def request_reaches(path: LlmPath, parsed: ParsedSource, call: Node, test_class: str) -> bool:
    """Does this `get/post/... target` (or controller-test `post :create`) hit an LLM controller?"""
    args = call.child_by_field_name("arguments")
    first = args.named_children[0] if args is not None and args.named_children else None
    if first is None:
        return False
    if first.type in ("simple_symbol", "symbol"):
        resource = class_resource(test_class)
        return bool(resource) and resource in path.controllers
    if first.type == "string":
        return _path_reaches(path, _literal_prefix(parsed, first))
    name = method_name(parsed, first) if first.type == "call" else parsed.text(first)
    if first.type in ("identifier", "call") and name.endswith(("_path", "_url")):
        return _helper_reaches(path, name.rsplit("_", 1)[0])
    return False


def _helper_reaches(path: LlmPath, helper: str) -> bool:
    if helper in path.helpers:
        return path.helpers[helper] in path.controllers
    if helper == "root":
        return path.routes.get("/") in path.controllers
    tokens = [t for t in helper.split("_") if t not in ("new", "edit")]
    return any(singular(t) in path.controllers for t in tokens)


def _path_reaches(path: LlmPath, url: str) -> bool:
    route = normalise(url)
    for pattern, target in path.routes.items():
        if route_matches(pattern, route):
            return target in path.controllers
    return any(singular(seg) in path.controllers for seg in route.strip("/").split("/") if seg)


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
