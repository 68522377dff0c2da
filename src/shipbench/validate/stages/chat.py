"""chat: use the booted app as a person would (real Chromium) and prove, from the requests the stand-in
captured, what it sends to the LLM and how it behaves on reload, restart, two workers, upstream errors,
hostile model output, a forged POST and a long conversation.

Invariants: every check has a stable id (CHECK_IDS) and appears exactly once in the result, with the captured
payloads or screenshots as evidence; a check that could not be exercised is `skipped` with the reason (an
earlier failure it depends on), never passed; an app that never calls the stand-in fails `chat.bypass` and
the payload checks are skipped, not failed twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psutil
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from shipbench.validate.browser import (
    ChatPage,
    NoComposer,
    Replay,
    Replayer,
    Turn,
    launch_browser,
    strip_csrf,
    swap_text,
)
from shipbench.validate.models import StageResult
from shipbench.validate.proc import AppProcess
from shipbench.validate.stage import Stage, StageBuilder, StageContext, skipped
from shipbench.validate.stages.boot import launch, standin
from shipbench.validate.standin import Captured, StandIn, message_text

CHECK_IDS = (
    "chat.reply_rendered",
    "chat.bypass",
    "chat.system_prompt",
    "chat.model_slug",
    "chat.key_from_env",
    "chat.multi_turn",
    "chat.reload_history",
    "chat.xss",
    "chat.upstream_429",
    "chat.upstream_500",
    "chat.csrf",
    "chat.restart_history",
    "chat.two_workers",
    "chat.long_conversation",
)
LONG_TURNS = 30
_ERROR_PAGE_STATUS = 500


@dataclass
class _Run:
    ctx: StageContext
    b: StageBuilder
    standin: StandIn
    page: ChatPage
    app: AppProcess
    tag: str

    def msg(self, label: str) -> str:
        return f"{label}-{self.tag}"

    def evidence(self, name: str, payload: Any) -> str:
        return self.ctx.write("chat", f"{name}.json", json.dumps(payload, indent=2, default=str))

    def shot(self, name: str) -> list[str]:
        path = self.page.screenshot(name)
        return [self.ctx.rel(path)] if path else []


def _non_system(captured: Captured) -> list[dict[str, Any]]:
    return [m for m in captured.messages() if m.get("role") not in ("system", "developer")]


def _count(messages: list[dict[str, Any]], role: str, needle: str) -> list[int]:
    return [i for i, m in enumerate(messages) if m.get("role") == role and needle in message_text(m)]


def _turn_evidence(r: _Run, name: str, turn: Turn) -> list[str]:
    return [
        r.evidence(
            name,
            {
                "typed": turn.text,
                "page_post": turn.post.__dict__ if turn.post else None,
                "llm_requests": [c.to_json() for c in turn.requests],
                "dialogs": turn.dialogs,
                "full_page_load": turn.full_reload,
                "reply_visible": turn.reply_visible,
            },
        )
    ]


def _first_turn(r: _Run) -> Turn | None:
    """Turn 1 and the checks it settles; None when nothing later can run."""
    turn = r.page.say(r.msg("hello-first-question"))
    ev = _turn_evidence(r, "turn1", turn) + r.shot("turn1")
    chat = turn.chat
    if chat is None:
        r.b.check("chat.bypass", False, "the app never called the LLM: no request reached the stand-in", ev)
        r.b.check("chat.reply_rendered", False, "no LLM reply could be shown (the app made no LLM request)", ev)
        return None
    r.b.check("chat.bypass", True, f"{len(turn.requests)} LLM request(s) for turn 1", ev)
    if turn.reply_visible and not turn.full_reload:
        r.b.check("chat.reply_rendered", True, "the stand-in's reply appeared without a full page load", ev)
    elif turn.reply_visible:
        r.b.check("chat.reply_rendered", False, "the reply appeared only after a full page load", ev)
    else:
        status = turn.post.status if turn.post else None
        r.b.check(
            "chat.reply_rendered",
            False,
            f"the stand-in's reply never appeared in the page (the page's POST answered {status})",
            ev,
        )
    system = [m for m in chat.messages() if m.get("role") in ("system", "developer") and message_text(m).strip()]
    top_system = isinstance(chat.body, dict) and bool(chat.body.get("system"))
    r.b.check(
        "chat.system_prompt",
        bool(system or top_system),
        f"system prompt: {message_text(system[0])[:120]!r}" if system else "no system message was sent",
        ev,
    )
    model = chat.body.get("model") if isinstance(chat.body, dict) else None
    accepted = [str(m) for m in r.ctx.settings.get("accepted_models", [])]
    r.b.facts["model_slug"] = model
    r.b.check(
        "chat.model_slug",
        bool(model) and (not accepted or model in accepted),
        f"requested model {model!r}"
        + ("" if not accepted or model in accepted else f", not one of the accepted {accepted}"),
        ev,
    )
    auth = chat.headers.get("Authorization") or chat.headers.get("authorization") or ""
    r.b.check(
        "chat.key_from_env",
        auth == f"Bearer {r.ctx.secret_token}",
        "the key sent is the OPENROUTER_API_KEY of the environment"
        if auth == f"Bearer {r.ctx.secret_token}"
        else "the Authorization header is not the environment's OPENROUTER_API_KEY",
        ev,
    )
    return turn


def _multi_turn(r: _Run, first: Turn) -> Turn:
    second = r.page.say(r.msg("and-a-follow-up"))
    ev = _turn_evidence(r, "turn2", second)
    chat, first_chat = second.chat, first.chat
    if chat is None or first_chat is None:
        r.b.check("chat.multi_turn", False, "turn 2 made no LLM request", ev)
        return second
    messages = _non_system(chat)
    users = _count(messages, "user", first.text)
    replies = _count(messages, "assistant", r.standin.token_of(first_chat.n))
    news = _count(messages, "user", second.text)
    problems = []
    if len(users) != 1:
        problems.append(f"turn 1's user message appears {len(users)} times")
    if len(replies) != 1:
        problems.append(f"turn 1's reply appears {len(replies)} times")
    if len(news) != 1 or news[-1] != len(messages) - 1:
        problems.append("the new message is not the last message, once")
    if not problems and not users[0] < replies[0] < news[0]:
        problems.append("the turns are out of order")
    r.b.check(
        "chat.multi_turn",
        not problems,
        "turn 2's request carries turn 1 (user and assistant) once, then the new message"
        if not problems
        else "; ".join(problems) + f" ({len(messages)} non-system messages sent)",
        ev,
    )
    return second


def _reload(r: _Run, first: Turn) -> None:
    text = r.page.reload()
    ev = [r.ctx.write("chat", "after-reload.txt", text), *r.shot("after-reload")]
    token = r.standin.token_of(first.chat.n) if first.chat else ""
    ok = first.text in text and bool(token) and token in text
    r.b.check(
        "chat.reload_history",
        ok,
        "turn 1 is shown again after a reload" if ok else "after a reload the page no longer shows turn 1",
        ev,
    )


def _xss(r: _Run) -> None:
    turn = r.page.say(r.msg("show-me-some-html"), "xss")
    r.page.page.wait_for_timeout(1500) if r.page.page else None
    live = list(r.page.xss_calls)
    ev = _turn_evidence(r, "xss", turn) + r.shot("xss")
    if not turn.requests:
        r.b.check("chat.xss", None, "the hostile reply was never requested", ev, skipped=True)
        return
    r.page.reload()
    r.page.page.wait_for_timeout(1500) if r.page.page else None
    after = [c for c in r.page.xss_calls if c not in live]
    calls = live + after
    r.b.facts["xss_calls"] = calls
    where = (
        ("as it arrived" if live else "") + (" and " if live and after else "") + ("after a reload" if after else "")
    )
    r.b.check(
        "chat.xss",
        not calls,
        "model output is shown as text (the payload did not run)"
        if not calls
        else f"model output ran as code in the page {where}: {calls}",
        ev,
    )


def _upstream_error(r: _Run, check_id: str, kind: str, label: str) -> None:
    before = r.page.text()
    turn = r.page.say(r.msg(label), kind)  # type: ignore[arg-type]
    ev = _turn_evidence(r, check_id.split(".")[1], turn) + r.shot(check_id.split(".")[1])
    if not turn.requests:
        r.b.check(check_id, None, "the app made no LLM request for this turn", ev, skipped=True)
        return
    status = turn.post.status if turn.post else None
    shown = turn.page_text.replace(turn.text, "")
    new_text = [line for line in shown.splitlines() if line.strip() and line not in before]
    problems = []
    if status is not None and status >= _ERROR_PAGE_STATUS and status != 502 and status != 503:
        problems.append(f"the app answered {status}")
    if not new_text and not turn.dialogs:
        problems.append("nothing new is visible to the user")
    recovery = r.page.say(r.msg(f"after-{label}"))
    ev += _turn_evidence(r, f"{check_id.split('.')[1]}-recovery", recovery)
    if not recovery.reply_visible:
        problems.append("the next turn's reply did not appear (the app stopped serving)")
    r.b.check(
        check_id,
        not problems,
        f"upstream {kind}: a message is shown ({(new_text or turn.dialogs)[0][:80]!r}) and the next turn works"
        if not problems
        else "; ".join(problems),
        ev,
    )


def _csrf(r: _Run, replayer: Replayer, first: Turn) -> None:
    forged = strip_csrf(replayer.template)
    swapped = replayer.template.body != forged.body or replayer.template.headers != forged.headers
    text = r.msg("forged-without-token")
    body = swap_text(forged.body, replayer.original_text, text)
    if body is None:
        r.b.check("chat.csrf", None, "the page's request does not carry the typed message", skipped=True)
        return
    forged.body = body
    result = replayer.send(text, post=forged, wait_s=0.5)
    ev = [
        r.evidence(
            "csrf",
            {
                "had_token": swapped,
                "request": forged.__dict__,
                "status": result.status,
                "llm_requests": [c.to_json() for c in result.requests],
                "error": result.error,
            },
        )
    ]
    if result.status is not None and 400 <= result.status < 500 and not result.requests:
        r.b.check("chat.csrf", True, f"a POST without the CSRF token was refused ({result.status})", ev)
        return
    carried = any(first.text in message_text(m) for c in result.requests for m in c.messages())
    if result.requests and not carried:
        r.b.check("chat.csrf", True, "served without the user's session (a null session): no history reached", ev)
        return
    why = "the app sends no CSRF token at all and " if not swapped else ""
    r.b.check(
        "chat.csrf",
        False,
        f"{why}a POST without the CSRF token was accepted ({result.status}) "
        f"{'and reached the LLM with the conversation' if carried else ''}".strip(),
        ev,
    )


def _replay_carries(replay: Replay, needle: str) -> bool:
    return any(needle in message_text(m) for c in replay.requests for m in _non_system(c))


def _restart(r: _Run, replayer: Replayer, first: Turn) -> bool:
    r.app.stop()
    r.app = launch(r.ctx, "restarted", port=r.app.port)
    health = r.app.wait_healthy(60)
    if not health.ok:
        r.b.check(
            "chat.restart_history",
            False,
            f"the app did not come back after a restart: {health.reason}",
            [r.ctx.write("chat", "restart.log.txt", r.app.log_tail(80))],
        )
        return False
    result = replayer.send(r.msg("after-a-restart"))
    ev = [
        r.evidence(
            "restart",
            {"status": result.status, "error": result.error, "llm_requests": [c.to_json() for c in result.requests]},
        )
    ]
    ok = _replay_carries(result, first.text)
    r.b.check(
        "chat.restart_history",
        ok,
        "after a restart the next request still carries turn 1"
        if ok
        else (
            f"after a restart the next request (status {result.status}) no longer carries turn 1"
            if result.requests
            else f"no LLM request after a restart (status {result.status} {result.error})"
        ),
        ev,
    )
    return True


def _worker_times(app: AppProcess) -> dict[int, float]:
    times: dict[int, float] = {}
    for pid in app.worker_pids():
        try:
            cpu = psutil.Process(pid).cpu_times()
            times[pid] = cpu.user + cpu.system
        except psutil.Error:
            continue
    return times


def _two_workers(r: _Run, replayer: Replayer) -> None:
    r.app.stop()
    r.app = launch(r.ctx, "two-workers", workers=2, port=r.app.port)
    health = r.app.wait_healthy(60)
    if not health.ok or len(r.app.worker_pids()) < 2:
        r.b.check(
            "chat.two_workers",
            False if not health.ok else None,
            f"the app did not start with two workers: {health.reason or 'puma forked no workers'}",
            [r.ctx.write("chat", "two-workers.log.txt", r.app.log_tail(80))],
            skipped=health.ok,
        )
        return
    served: dict[int, int] = {}
    log: list[dict[str, Any]] = []
    previous = ""
    broken = []
    for i in range(1, 9):
        before = _worker_times(r.app)
        text = r.msg(f"worker-turn-{i}")
        result = replayer.send(text)
        after = _worker_times(r.app)
        busiest = max(after, key=lambda p: after[p] - before.get(p, 0.0)) if after else 0
        served[busiest] = served.get(busiest, 0) + 1
        ok = bool(result.requests) and (not previous or _replay_carries(result, previous))
        log.append({"turn": i, "worker": busiest, "status": result.status, "carries_previous": ok})
        if not ok:
            broken.append(i)
        previous = text
        if len(served) >= 2 and i >= 4 and not broken:
            break
    ev = [r.evidence("two-workers", {"turns": log, "workers": served})]
    if broken:
        r.b.check("chat.two_workers", False, f"with two workers, turns {broken} lost the turn before them", ev)
    elif len(served) < 2:
        r.b.check("chat.two_workers", None, "inconclusive: one worker served every turn", ev, skipped=True)
    else:
        r.b.check("chat.two_workers", True, f"{len(log)} turns over {len(served)} workers kept the history", ev)


def _long(r: _Run, replayer: Replayer) -> None:
    rows: list[dict[str, Any]] = []
    problem = ""
    for i in range(1, LONG_TURNS + 1):
        result = replayer.send(r.msg(f"long-turn-{i}"), "long", wait_s=0.0)
        sizes = [len(json.dumps(c.body)) for c in result.requests]
        rows.append(
            {
                "turn": i,
                "status": result.status,
                "payload_bytes": sizes,
                "error": result.error,
                "cookie_bytes": sum(len(k) + len(v) for k, v in replayer.cookies.items()),
            }
        )
        if result.status is None or result.status >= 500 or not result.requests:
            problem = f"turn {i} of {LONG_TURNS} broke: status {result.status} {result.error}".strip() + (
                "" if result.requests else ", no LLM request"
            )
            break
    r.b.facts["long_conversation"] = rows[-1] if rows else {}
    ev = [r.evidence("long-conversation", rows)]
    r.b.check("chat.long_conversation", not problem, problem or f"{LONG_TURNS} turns of 1 KB replies all served", ev)


def _skip_rest(b: StageBuilder, reason: str) -> None:
    done = {c.id for c in b.checks}
    for check_id in CHECK_IDS:
        if check_id not in done:
            b.check(check_id, None, reason, skipped=True)


class BrowserUnavailable(Exception):
    """Chromium could not be started here (the machine's cause)."""


def _session(ctx: StageContext, b: StageBuilder, app: AppProcess) -> None:
    with sync_playwright() as pw:
        try:
            browser = launch_browser(pw)
        except PlaywrightError as exc:
            raise BrowserUnavailable(str(exc).splitlines()[0]) from exc
        try:
            page = ChatPage(browser, app.url, standin(ctx), ctx.stage_dir("chat"))
            r = _Run(ctx, b, page.standin, page, app, ctx.secret_token[:6])
            page.open()
            first = _first_turn(r)
            if first is None:
                _skip_rest(b, "skipped: the app never called the LLM (chat.bypass)")
                return
            _multi_turn(r, first)
            _reload(r, first)
            _xss(r)
            _upstream_error(r, "chat.upstream_429", "rate_limit", "rate-limited")
            _upstream_error(r, "chat.upstream_500", "server_error", "upstream-broken")
            if page.template is None:
                _skip_rest(b, "skipped: the page's chat request could not be captured for replay")
                return
            replayer = Replayer(page.template, first.text, page.standin, page.cookies())
            _csrf(r, replayer, first)
            if _restart(r, replayer, first):
                _two_workers(r, replayer)
                _long(r, replayer)
            ctx.state["app"] = r.app
        finally:
            browser.close()


def _run(ctx: StageContext) -> StageResult:
    app = ctx.state.get("app")
    if not isinstance(app, AppProcess) or not app.alive():
        return skipped("chat", "the app is not running (boot did not pass)")
    b = StageBuilder("chat")
    try:
        _session(ctx, b, app)
    except NoComposer as exc:
        b.evidence.append(ctx.write("chat", "page.txt", str(exc)))
        b.check("chat.reply_rendered", False, str(exc))
        _skip_rest(b, "skipped: there is no composer to chat through")
    except BrowserUnavailable as exc:
        _skip_rest(b, f"infra: Chromium could not start: {exc}")
        return b.result("error", f"Chromium could not start: {exc}", infra=True)
    except PlaywrightError as exc:  # the page itself: it did not load, or a turn could not be driven
        first = str(exc).splitlines()[0]
        b.evidence.append(ctx.write("chat", "browser-error.txt", str(exc)))
        failed_id = "chat.page" if b.checks else "chat.reply_rendered"
        b.check(failed_id, False, f"the page could not be used: {first}", b.evidence[-1:])
        _skip_rest(b, "skipped: the page could not be used")
    b.facts["llm_requests"] = standin(ctx).count()
    b.evidence.append(ctx.rel(standin(ctx).evidence))
    return b.result()


STAGE = Stage(id="chat", title="Chat through the page in Chromium", run=_run, needs=("boot",), timeout_s=420)
