"""Committed secrets: provider keys (our patterns + detect-secrets' token detectors), .env files with
values, and Rails master keys.

Invariants: a secret is reported as (path, line, kind) and its value is never stored; values that are
clearly placeholders or fakes (your_key_here, xxx, <...>, ${VAR}, ENV[...], fake/dummy/test/example,
long runs of one character or a sequence) never count, wherever they are; every other match counts in
any directory, tests and fixtures included. detect-secrets runs with token-shaped detectors only (no
entropy or keyword heuristics, which flag hashes and test passwords), over text files under
SCAN_MAX_BYTES, lockfiles excluded, without git. Nothing here raises.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shipbench.audit.facts.model import Located
from shipbench.audit.files import ProjectFiles, SourceFile

SCAN_MAX_BYTES = 200 * 1024
LOCKFILES = frozenset(
    {"Gemfile.lock", "gems.locked", "yarn.lock", "package-lock.json", "pnpm-lock.yaml", "bun.lock"}
)
DETECT_SECRETS_PLUGINS = (
    "AWSKeyDetector",
    "ArtifactoryDetector",
    "AzureStorageKeyDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)
ENV_TEMPLATE_SUFFIXES = frozenset({"example", "sample", "template", "dist", "defaults", "tmpl", "tpl"})


@dataclass(frozen=True)
class KeyPattern:
    kind: str
    regex: re.Pattern[str]
    min_entropy: float  # Shannon bits per character of the matched value


_B = r"(?<![A-Za-z0-9_\-])"  # not inside a longer token
_E = r"(?![A-Za-z0-9_\-])"
KEY_PATTERNS = (
    KeyPattern("OpenRouter API key", re.compile(_B + r"sk-or-v1-[0-9a-f]{64}" + _E), 3.0),
    KeyPattern("Anthropic API key", re.compile(_B + r"sk-ant-[a-z]+\d*-[A-Za-z0-9_\-]{32,}" + _E), 3.5),
    KeyPattern(
        "OpenAI API key",
        re.compile(_B + r"sk-(?!or-|ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,}" + _E),
        3.5,
    ),
    KeyPattern("Google API key", re.compile(_B + r"AIza[0-9A-Za-z_\-]{35}" + _E), 3.0),
    KeyPattern("AWS access key id", re.compile(_B + r"(?:AKIA|ASIA)[0-9A-Z]{16}" + _E), 2.5),
)
_FAKE_WORDS = (
    "xxx",
    "your",
    "example",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "dummy",
    "fake",
    "test",
    "sample",
    "redacted",
    "replace",
    "insert",
    "todo",
    "secret_here",
    "key_here",
    "...",
)
_PLACEHOLDER_RE = re.compile(r"^(<.*>|\$\{.*\}|\$[A-Z_]+|ENV\[.*\]|ENV\.fetch.*|%\{.*\}|\{\{.*\}\})$")
_ENV_LINE_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$")


@dataclass
class SecretFacts:
    secrets: list[Located] = field(default_factory=list)
    committed_env_files: list[str] = field(default_factory=list)
    master_key: str | None = None


def entropy(value: str) -> float:
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def is_placeholder(value: str) -> bool:
    """True for values that are clearly not real: empty, templated, fake words, runs, sequences."""
    stripped = value.strip().strip("\"'").strip()
    if not stripped:
        return True
    lowered = stripped.lower()
    if _PLACEHOLDER_RE.match(stripped) or any(word in lowered for word in _FAKE_WORDS):
        return True
    if re.search(r"(.)\1{5,}", stripped):
        return True
    return _has_sequence(lowered, 8)


def _has_sequence(text: str, length: int) -> bool:
    run = 1
    for a, b in itertools.pairwise(text):
        run = run + 1 if ord(b) - ord(a) == 1 else 1
        if run >= length:
            return True
    return False


def scan_text_for_keys(text: str) -> Iterator[tuple[int, str]]:
    """(line, kind) for each provider-key-shaped, non-placeholder value in `text`."""
    for number, line in enumerate(text.splitlines(), 1):
        for pattern in KEY_PATTERNS:
            for match in pattern.regex.finditer(line):
                value = match.group(0)
                if entropy(value) >= pattern.min_entropy and not is_placeholder(value):
                    yield number, pattern.kind
                    break


def _detect_in_text(path: str, text: str) -> Iterator[Any]:
    """What detect-secrets' `scan.scan_file(path)` yields, read from `text` instead of the file.

    Its filename filters only stat `path`; the transformers get a named in-memory copy.
    """
    from detect_secrets.core import scan
    from detect_secrets.transformers import get_transformed_file

    if scan._is_filtered_out(required_filter_parameters=["filename"], filename=path):
        return
    handle: Any = io.StringIO(text)
    handle.name = path  # the transformers choose by file name
    candidates = [get_transformed_file(handle) or io.StringIO(text, newline=None).readlines()]
    handle.seek(0)
    candidates.append(get_transformed_file(handle, use_eager_transformers=True) or [])
    for lines in candidates:
        found = list(scan._process_line_based_plugins(lines=list(enumerate(lines, start=1)), filename=path))
        yield from found
        if found:
            return


def scannable(files: ProjectFiles) -> list[SourceFile]:
    return [f for f in files.files.values() if f.size <= SCAN_MAX_BYTES and f.name not in LOCKFILES]


def secret_facts(files: ProjectFiles, errors: list[str]) -> SecretFacts:
    facts = SecretFacts()
    texts: dict[str, tuple[str, str]] = {}  # rel -> (real path, text): read once, safely
    found: dict[tuple[str, int], str] = {}
    for source in scannable(files):
        try:
            text = source.read_text()
        except OSError as exc:
            errors.append(f"{source.rel}: unreadable ({exc})"[:200])
            continue
        texts[source.rel] = (str(source.abs_path), text)
        for line, kind in scan_text_for_keys(text):
            found.setdefault((source.rel, line), kind)
        if is_env_file(source.name) and env_has_values(text):
            facts.committed_env_files.append(source.rel)
    for (rel, line), kind in detect_secrets_scan(texts, errors).items():
        found.setdefault((rel, line), kind)
    facts.secrets = [Located(path=rel, line=line, detail=kind) for (rel, line), kind in sorted(found.items())]
    facts.master_key = find_master_key(files)
    return facts


def is_env_file(name: str) -> bool:
    """`.env`, `.env.local`, `.env.production`, `production.env`...; not `.env.example` and friends."""
    if name == ".env":
        return True
    if name.startswith(".env."):
        return name.rsplit(".", 1)[-1].lower() not in ENV_TEMPLATE_SUFFIXES
    return name.endswith(".env") and len(name) > 4


def env_has_values(text: str) -> bool:
    for line in text.splitlines():
        match = _ENV_LINE_RE.match(line)
        if match is None or line.lstrip().startswith("#"):
            continue
        value = match.group(2).strip()
        if value[:1] not in ("'", '"'):
            value = re.sub(r"(^|\s)#.*$", "", value).strip()
        if not is_placeholder(value):
            return True
    return False


def find_master_key(files: ProjectFiles) -> str | None:
    present = sorted(set(files.files) | {issue.path for issue in files.issues})
    for rel in present:
        if rel == "config/master.key" or rel.endswith("/config/master.key"):
            return rel
        head, _, name = rel.rpartition("/")
        if name.endswith(".key") and (head == "config/credentials" or head.endswith("/config/credentials")):
            return rel
    return None


def detect_secrets_scan(texts: dict[str, tuple[str, str]], errors: list[str]) -> dict[tuple[str, int], str]:
    """detect-secrets' token detectors over `texts` (rel -> (real path, text read)); (rel, line) -> kind.

    Never raises. The texts are fed to detect-secrets' own line pipeline (its file transformers
    included) so that it never opens a project path itself: that open could block on a FIFO.
    """
    try:
        from detect_secrets.core.secrets_collection import SecretsCollection
        from detect_secrets.settings import transient_settings
    except ImportError as exc:
        errors.append(f"detect-secrets unavailable: {exc}"[:200])
        return {}
    config: dict[str, Any] = {"plugins_used": [{"name": name} for name in DETECT_SECRETS_PLUGINS]}
    collection = SecretsCollection()
    quiet = logging.getLogger("detect-secrets")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with transient_settings(config):
            for rel, (path, text) in texts.items():
                for secret in _detect_in_text(path, text):
                    collection[rel].add(secret)
    except Exception as exc:  # a third-party scanner bug must not lose the audit
        errors.append(f"detect-secrets failed: {type(exc).__name__}: {exc}"[:200])
    finally:
        quiet.setLevel(level)
    found: dict[tuple[str, int], str] = {}
    for rel, secret in collection:
        value = getattr(secret, "secret_value", None) or ""
        if value and is_placeholder(value):
            continue
        found.setdefault((rel.replace("\\", "/"), int(secret.line_number)), str(secret.type))
    return found
