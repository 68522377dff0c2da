"""Drive the app's chat page in real Chromium (Playwright) and replay its own chat request over plain HTTP.

Invariants: the composer is found by what a user sees (a visible text field in a form, else any visible
text field), never by the project's names; a turn waits for the page's own POST and the stand-in's reply
token in the rendered text; a full page load is detected by a marker set in the window before the turn;
every model-output execution reaches `xss_calls` through a page-side hook; replays reuse the exact request
the page sent (URL, headers, body, cookies), with only the message text swapped.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Request as PwRequest
from playwright.sync_api import Response as PwResponse

from shipbench.validate.standin import XSS_HOOK, Captured, ReplyKind, StandIn

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_FIELDS = (
    "form textarea:visible",
    "form input[type=text]:visible",
    "form input:not([type]):visible",
    "textarea:visible",
    "[contenteditable=true]:visible",
)
_SUBMITS = ("button[type=submit]:visible", "input[type=submit]:visible", "button:not([type]):visible")
_KEEP_HEADERS = {"content-type", "accept", "x-csrf-token", "x-requested-with", "turbo-frame", "x-turbo-request-id"}


class NoComposer(Exception):
    """The page has no visible text field to type a message into."""


def launch_browser(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@dataclass
class PagePost:
    """A POST the page itself sent (what replays copy)."""

    url: str
    headers: dict[str, str]
    body: str
    status: int | None = None
    is_navigation: bool = False


@dataclass
class Turn:
    text: str
    requests: list[Captured]  # chat requests the stand-in received during the turn
    post: PagePost | None
    reply_visible: bool
    full_reload: bool
    page_text: str
    dialogs: list[str]

    @property
    def chat(self) -> Captured | None:
        return self.requests[-1] if self.requests else None


@dataclass
class Replay:
    status: int | None
    requests: list[Captured]
    error: str = ""
    body: str = ""


@dataclass
class ChatPage:
    """One browser context on the app; `say` is one user turn through the page."""

    browser: Browser
    base_url: str
    standin: StandIn
    shots: Path
    turn_timeout_s: float = 20.0
    xss_calls: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    posts: list[PagePost] = field(default_factory=list)
    template: PagePost | None = None
    context: BrowserContext | None = None
    page: Page | None = None

    def open(self) -> Page:
        self.context = self.browser.new_context()
        self.context.expose_function(XSS_HOOK, lambda tag: self.xss_calls.append(str(tag)))
        page = self.context.new_page()
        page.on("request", self._on_request)
        page.on("response", self._on_response)
        page.on("dialog", self._on_dialog)
        page.goto(self.base_url + "/", wait_until="load", timeout=30_000)
        self.page = page
        return page

    def close(self) -> None:
        if self.context is not None:
            with contextlib.suppress(PlaywrightError):
                self.context.close()

    def _on_request(self, request: PwRequest) -> None:
        if request.method == "POST" and request.url.startswith(self.base_url):
            self.posts.append(
                PagePost(
                    request.url,
                    dict(request.headers),
                    request.post_data or "",
                    is_navigation=request.is_navigation_request(),
                )
            )

    def _on_response(self, response: PwResponse) -> None:
        request = response.request
        if request.method == "POST" and request.url.startswith(self.base_url):
            for post in reversed(self.posts):
                if post.url == request.url and post.status is None:
                    post.status = response.status
                    break

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(str(dialog.message))
        with contextlib.suppress(PlaywrightError):
            dialog.dismiss()

    def text(self) -> str:
        assert self.page is not None
        try:
            return self.page.inner_text("body", timeout=5_000)
        except PlaywrightError:
            return ""

    def screenshot(self, name: str) -> Path | None:
        assert self.page is not None
        path = self.shots / f"{name}.png"
        try:
            self.page.screenshot(path=str(path), full_page=True, timeout=10_000)
        except PlaywrightError:
            return None
        return path

    def reload(self) -> str:
        assert self.page is not None
        self.page.reload(wait_until="load", timeout=30_000)
        self.page.wait_for_timeout(800)
        return self.text()

    def _composer(self) -> tuple[Any, Any | None]:
        assert self.page is not None
        for selector in _FIELDS:
            found = self.page.locator(selector)
            if found.count():
                box = found.last
                form = box.locator("xpath=ancestor::form[1]")
                for submit in _SUBMITS:
                    if form.count() and form.locator(submit).count():
                        return box, form.locator(submit).last
                return box, None
        raise NoComposer("no visible text field (textarea or text input) on the page")

    def say(self, text: str, kind: ReplyKind = "normal") -> Turn:
        """Type `text`, submit it and wait for the reply (or, for a scripted error, for the page's answer)."""
        assert self.page is not None
        page = self.page
        box, submit = self._composer()
        self.standin.script(kind)
        before = self.standin.count()
        posts_before, dialogs_before = len(self.posts), len(self.dialogs)
        page.evaluate("() => { window.__shipbenchMarker = 'same-page'; }")
        box.fill(text)
        if submit is not None:
            submit.click(timeout=5_000)
        else:
            box.press("Enter")
        deadline = time.monotonic() + self.turn_timeout_s
        visible = False
        settle_until: float | None = None
        while time.monotonic() < deadline:
            page.wait_for_timeout(200)
            chats = [c for c in self.standin.since(before) if c.reply_kind != "not_chat"]
            answered = [p for p in self.posts[posts_before:] if p.status is not None]
            body = self.text()
            tokens = [self.standin.token_of(c.n) for c in chats if c.reply_status == 200]
            if tokens and any(t in body for t in tokens):
                visible = True
                break
            if answered and settle_until is None:
                settle_until = time.monotonic() + (2.0 if (kind != "normal" or not chats) else 6.0)
            if settle_until is not None and time.monotonic() > settle_until:
                break
        page.wait_for_timeout(300)
        try:
            marker = page.evaluate("() => window.__shipbenchMarker || ''")
        except PlaywrightError:
            marker = ""
        new_posts = self.posts[posts_before:]
        if new_posts and self.template is None:
            self.template = new_posts[0]
        chats = [c for c in self.standin.since(before) if c.reply_kind != "not_chat"]
        return Turn(
            text,
            chats,
            new_posts[0] if new_posts else None,
            visible,
            marker != "same-page",
            self.text(),
            self.dialogs[dialogs_before:],
        )

    def cookies(self) -> dict[str, str]:
        assert self.context is not None
        return {c["name"]: c["value"] for c in self.context.cookies()}


def _encoded_forms(text: str) -> list[tuple[str, str]]:
    return [
        (urllib.parse.quote_plus(text), "plus"),
        (urllib.parse.quote(text, safe=""), "quote"),
        (text, "raw"),
        (json.dumps(text)[1:-1], "json"),
    ]


def swap_text(body: str, old: str, new: str) -> str | None:
    """`body` with the message `old` replaced by `new`, in whichever encoding the page used (None: not found)."""
    for encoded, how in _encoded_forms(old):
        if encoded and encoded in body:
            replacement = {
                "plus": urllib.parse.quote_plus(new),
                "quote": urllib.parse.quote(new, safe=""),
                "raw": new,
                "json": json.dumps(new)[1:-1],
            }[how]
            return body.replace(encoded, replacement)
    return None


_TOKEN_FIELD = re.compile(r"(^|&)[^=&]*authenticity_token[^=&]*=[^&]*")


def strip_csrf(post: PagePost) -> PagePost:
    """The same request without its CSRF token (header, form field or JSON key)."""
    headers = {k: v for k, v in post.headers.items() if k.lower() != "x-csrf-token"}
    body = post.body
    kind = post.headers.get("content-type", "")
    if "json" in kind:
        try:
            data = json.loads(body)
            if isinstance(data, dict):
                data = {k: v for k, v in data.items() if "authenticity_token" not in k}
                body = json.dumps(data)
        except ValueError:
            pass
    elif "multipart" in kind:
        body = re.sub(
            r"--[^\r\n]+\r\nContent-Disposition: form-data; name=\"[^\"]*authenticity_token[^\"]*\"\r\n\r\n"
            r"[^\r\n]*\r\n",
            "",
            body,
        )
    else:
        body = _TOKEN_FIELD.sub("", body).lstrip("&")
    return PagePost(post.url, headers, body)


@dataclass
class Replayer:
    """Sends the page's own request again over a fresh connection each time, keeping the session cookies."""

    template: PagePost
    original_text: str
    standin: StandIn
    cookies: dict[str, str]

    def send(self, text: str, kind: ReplyKind = "normal", post: PagePost | None = None, wait_s: float = 0.3) -> Replay:
        base = post or self.template
        body = swap_text(base.body, self.original_text, text) if post is None else base.body
        if body is None:
            return Replay(None, [], error="the page's request does not carry the typed message")
        self.standin.script(kind)
        before = self.standin.count()
        url = urllib.parse.urlsplit(base.url)
        headers = {k: v for k, v in base.headers.items() if k.lower() in _KEEP_HEADERS}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers["Origin"] = f"{url.scheme}://{url.netloc}"
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=60)
        try:
            conn.request(
                "POST", url.path + (f"?{url.query}" if url.query else ""), body=body.encode("utf-8"), headers=headers
            )
            resp = conn.getresponse()
            data = resp.read(300_000).decode("utf-8", "replace")
            for value in resp.headers.get_all("Set-Cookie") or []:
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for name, morsel in jar.items():
                    if morsel["max-age"] == "0" or "1970" in (morsel["expires"] or ""):
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            status: int | None = resp.status
        except (OSError, http.client.HTTPException) as exc:
            return Replay(None, self.standin.since(before), error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        time.sleep(wait_s)
        chats = [c for c in self.standin.since(before) if c.reply_kind != "not_chat"]
        return Replay(status, chats, body=data[:2000])
