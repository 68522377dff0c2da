"""Read one request of any of the four wires into a wire-neutral view: prompts, tool results, tools offered.

Invariants: parsing never raises on odd shapes (unknown items are skipped); `entries` keeps conversation
order; a user message that carries a tool result counts only as tool result(s), never as a prompt, so
text an agent appends beside tool results cannot reset the step count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Wire = Literal["openai_chat", "openai_responses", "anthropic", "gemini"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    properties: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    kind: Literal["prompt", "tool_result"]
    text: str = ""


@dataclass
class Conversation:
    wire: Wire
    model: str
    stream: bool
    entries: list[Entry] = field(default_factory=list)
    tools: list[ToolSpec] = field(default_factory=list)
    system: str = ""
    json_schema: dict[str, Any] | None = None  # the request asks for JSON output following this schema

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    def all_text(self) -> str:
        return "\n".join([self.system, *(e.text for e in self.entries if e.kind == "prompt")])


def _spec(name: object, schema: object) -> ToolSpec | None:
    if not isinstance(name, str) or not name:
        return None
    schema = schema if isinstance(schema, dict) else {}
    props = schema.get("properties")
    required = schema.get("required")
    return ToolSpec(
        name=name,
        properties=props if isinstance(props, dict) else {},
        required=tuple(r for r in required if isinstance(r, str)) if isinstance(required, list) else (),
    )


def _text_of(content: object, *, kinds: tuple[str, ...] = ("text", "input_text")) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") in kinds]
    return "\n".join(p for p in parts if isinstance(p, str))


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _openai_chat(body: dict[str, Any], conv: Conversation) -> None:
    for msg in _dicts(body.get("messages")):
        role = msg.get("role")
        if role == "tool":
            conv.entries.append(Entry("tool_result"))
        elif role == "user":
            conv.entries.append(Entry("prompt", _text_of(msg.get("content"))))
        elif role in ("system", "developer"):
            conv.system += _text_of(msg.get("content")) + "\n"
    for tool in _dicts(body.get("tools")):
        fn = tool.get("function")
        if isinstance(fn, dict) and (spec := _spec(fn.get("name"), fn.get("parameters"))):
            conv.tools.append(spec)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and isinstance(fmt.get("json_schema"), dict):
        schema = fmt["json_schema"].get("schema")
        conv.json_schema = schema if isinstance(schema, dict) else {}


_RESULT_ITEMS = {"function_call_output", "custom_tool_call_output", "local_shell_call_output", "tool_search_output"}


def _responses_tools(tools: object, conv: Conversation) -> None:
    for tool in _dicts(tools):
        if isinstance(tool.get("tools"), list):  # a namespace groups further tools
            _responses_tools(tool["tools"], conv)
        elif tool.get("type", "function") == "function" and (spec := _spec(tool.get("name"), tool.get("parameters"))):
            conv.tools.append(spec)


def _openai_responses(body: dict[str, Any], conv: Conversation) -> None:
    conv.system = str(body.get("instructions") or "")
    items = body.get("input")
    if isinstance(items, str):
        conv.entries.append(Entry("prompt", items))
    for item in _dicts(items):
        kind = item.get("type", "message")
        if kind in _RESULT_ITEMS:
            conv.entries.append(Entry("tool_result"))
        elif kind == "message" and item.get("role") == "user":
            conv.entries.append(Entry("prompt", _text_of(item.get("content"))))
        elif kind == "message" and item.get("role") in ("system", "developer"):
            conv.system += "\n" + _text_of(item.get("content"))
    _responses_tools(body.get("tools"), conv)
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        conv.json_schema = fmt.get("schema") if isinstance(fmt.get("schema"), dict) else {}


def _anthropic(body: dict[str, Any], conv: Conversation) -> None:
    system = body.get("system")
    conv.system = system if isinstance(system, str) else _text_of(system)
    for msg in _dicts(body.get("messages")):
        if msg.get("role") != "user":
            continue
        blocks = _dicts(msg.get("content"))
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if results:
            conv.entries.extend(Entry("tool_result") for _ in results)
        else:
            conv.entries.append(Entry("prompt", _text_of(msg.get("content"))))
    for tool in _dicts(body.get("tools")):
        if (spec := _spec(tool.get("name"), tool.get("input_schema"))) and "input_schema" in tool:
            conv.tools.append(spec)


def _gemini(body: dict[str, Any], conv: Conversation) -> None:
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        conv.system = "\n".join(str(p.get("text", "")) for p in _dicts(system.get("parts")))
    for content in _dicts(body.get("contents")):
        if content.get("role", "user") != "user":
            continue
        parts = _dicts(content.get("parts"))
        results = [p for p in parts if "functionResponse" in p]
        if results:
            conv.entries.extend(Entry("tool_result") for _ in results)
        else:
            texts = [p.get("text") for p in parts]
            conv.entries.append(Entry("prompt", "\n".join(t for t in texts if isinstance(t, str))))
    for group in _dicts(body.get("tools")):
        for decl in _dicts(group.get("functionDeclarations")):
            schema = decl.get("parametersJsonSchema", decl.get("parameters"))
            if spec := _spec(decl.get("name"), schema):
                conv.tools.append(spec)
    config = body.get("generationConfig")
    if isinstance(config, dict):
        schema = config.get("responseJsonSchema", config.get("responseSchema"))
        if isinstance(schema, dict):
            conv.json_schema = schema


_PARSERS = {"openai_chat": _openai_chat, "openai_responses": _openai_responses, "anthropic": _anthropic}


def parse_request(wire: Wire, body: dict[str, Any], *, model: str = "", stream: bool = False) -> Conversation:
    """The wire-neutral view of one request body. `model`/`stream` override the body (Gemini: from the URL)."""
    conv = Conversation(
        wire=wire, model=model or str(body.get("model") or ""), stream=stream or body.get("stream") is True
    )
    if wire == "gemini":
        _gemini(body, conv)
    else:
        _PARSERS[wire](body, conv)
    return conv


_WORKDIR_PATTERNS = (
    re.compile(r"<cwd>\s*([^<\s][^<]*?)\s*</cwd>"),
    re.compile(r"[Ww]orking directory:\s*(/\S+)"),
    re.compile(r"Workspace Directories:\**\s*-\s*(/\S+)"),
)


def infer_workdir(conv: Conversation) -> str | None:
    """The agent's working directory as its own system prompt or context states it, when it does."""
    text = conv.all_text()
    for pattern in _WORKDIR_PATTERNS:
        if m := pattern.search(text):
            return m.group(1).rstrip(".,;'\"`")
    return None
