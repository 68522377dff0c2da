"""Helpers shared by the agent adapters: the scratch environment, JSON line decoding, safe field access.

Invariants: `base_env` starts from nothing (only PATH is taken from the harness), so no provider key
or other secret of the harness can leak into an agent; `compact_json` output is at most
`TOOL_INPUT_LIMIT` characters and two different inputs never clip to the same string (a hash of the
full JSON is appended when clipping); nothing here raises on malformed input.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from shipbench.agents.base import AgentEvent, InvocationRequest, Usage

TOOL_INPUT_LIMIT = 2048
TEXT_LIMIT = 16 * 1024
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_VERSION_RE = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?")

JsonObj = dict[str, Any]


def base_env(request: InvocationRequest, extra: Mapping[str, str]) -> dict[str, str]:
    """A from-scratch environment: PATH, private HOME and XDG dirs, LANG, TERM=dumb, then the agent's own vars."""
    home = request.home
    env = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": str(home),
        "USER": os.environ.get("USER", "shipbench"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
    }
    env.update(extra)
    return env


def markdown_with_frontmatter(fields: Mapping[str, str], body: str) -> str:
    """A Markdown file with YAML frontmatter; values are JSON strings (valid YAML double-quoted scalars)."""
    head = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=True)}" for key, value in fields.items())
    return f"---\n{head}\n---\n\n{body.strip()}\n"


def proxy_root(base_url: str) -> str:
    return base_url.rstrip("/")


def compact_json(value: object, limit: int = TOOL_INPUT_LIMIT) -> str:
    """Compact JSON of a tool input, clipped to `limit` chars with a digest of the whole when clipped."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = str(value)
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]
    suffix = f"...#{digest}"
    return text[: limit - len(suffix)] + suffix


def clip_text(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[:limit]


def decode_line(line: str) -> JsonObj | None:
    """The JSON object on a line, or None when the line is not one."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def as_dict(value: object) -> JsonObj:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_int(value: object) -> int:
    """A non-negative int from a JSON number; anything else (bool, str, null, negative) is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0)


def unparsed(line: str, raw_type: str = "") -> AgentEvent:
    return AgentEvent(kind="unparsed", raw_type=raw_type, text=clip_text(line.strip(), 2048))


def usage_or_none(usage: Usage) -> Usage | None:
    """None for an all-zero usage, so that only events that really carry tokens have a usage."""
    return usage if usage.total or usage.reasoning_tokens else None


def guarded_parse(line: str, parse: Callable[[JsonObj], list[AgentEvent] | None]) -> list[AgentEvent]:
    """Decode `line` and run `parse` on it; never raises. Blank lines yield nothing; anything not
    understood yields one `unparsed` event (parse returning None means: known shape missing)."""
    if not line.strip():
        return []
    obj = decode_line(line)
    if obj is None:
        return [unparsed(line)]
    raw_type = as_str(obj.get("type")) or ""
    try:
        events = parse(obj)
    except Exception:  # a parser bug must never take the runner down: keep the line as unparsed
        return [unparsed(line, raw_type)]
    return [unparsed(line, raw_type)] if events is None else events


def parse_semver(output: str) -> str:
    """The first x.y.z version in a `--version` output ("" when there is none)."""
    match = _VERSION_RE.search(output)
    return match.group(0) if match else ""
