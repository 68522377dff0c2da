"""Units of `shipbench validate` that need no Rails: the stand-in's wire and capture, the replay helpers,
the suite parsers, the project copy, the ladder's skip rules and the task pack's stage list."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from shipbench.tasks.pack import TaskPackError, load_task
from shipbench.validate.browser import PagePost, strip_csrf, swap_text
from shipbench.validate.engine import copy_project
from shipbench.validate.ladder import run_ladder
from shipbench.validate.models import StageResult, ValidationResult
from shipbench.validate.stage import Stage, StageBuilder, StageContext
from shipbench.validate.stages.deps import first_error, installed_versions
from shipbench.validate.stages.gates import suppressions
from shipbench.validate.stages.tests import coverage, parse_summary
from shipbench.validate.standin import StandIn


def _post(url: str, body: dict[str, object], key: str = "k") -> tuple[int, dict[str, object] | str]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if resp.headers["Content-Type"] == "application/json" else text
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_standin_answers_openai_wire_in_script_order_and_records_everything(tmp_path: Path) -> None:
    standin = StandIn(tmp_path / "requests.jsonl").start()
    try:
        url = standin.base_url + "/chat/completions"
        body = {"model": "anthropic/claude-sonnet-4", "messages": [{"role": "user", "content": "hi"}]}
        standin.script("rate_limit", "server_error")
        assert _post(url, body)[0] == 429
        assert _post(url, body)[0] == 500
        status, reply = _post(url, body, key="secret")
        assert status == 200 and isinstance(reply, dict)
        content = reply["choices"][0]["message"]["content"]  # type: ignore[index]
        assert standin.token_of(3) in content and reply["usage"]["total_tokens"] > 0  # type: ignore[index]
        stream_status, stream = _post(url, {**body, "stream": True})
        assert stream_status == 200 and isinstance(stream, str)
        assert stream.rstrip().endswith("data: [DONE]") and standin.token_of(4) in stream
        assert _post(standin.base_url + "/models", {})[0] == 404
    finally:
        standin.stop()
    lines = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert [line["reply_status"] for line in lines] == [429, 500, 200, 200, 404]
    assert lines[2]["headers"]["Authorization"] == "Bearer secret"
    assert lines[0]["body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert [c.reply_kind for c in standin.requests] == ["rate_limit", "server_error", "normal", "normal", "not_chat"]


def test_xss_reply_calls_the_page_hook_and_long_reply_is_one_kilobyte(tmp_path: Path) -> None:
    standin = StandIn(tmp_path / "r.jsonl")
    assert "onerror=" in standin.reply_for(1, "xss") and "<script>" in standin.reply_for(1, "xss")
    assert 900 <= len(standin.reply_for(2, "long")) <= 1024


@pytest.mark.parametrize("body,content_type", [
    ("authenticity_token=abc%2B%3D&message%5Bcontent%5D=hello-1-x", "application/x-www-form-urlencoded"),
    (json.dumps({"authenticity_token": "abc", "content": "hello-1-x"}), "application/json"),
])
def test_swap_and_strip_keep_the_request_but_the_text_and_the_token(body: str, content_type: str) -> None:
    post = PagePost("http://127.0.0.1:1/messages", {"content-type": content_type, "x-csrf-token": "t"}, body)
    swapped = swap_text(post.body, "hello-1-x", "second-2-y")
    assert swapped is not None and "second-2-y" in swapped and "hello-1-x" not in swapped
    assert swap_text(post.body, "absent-text", "x") is None
    stripped = strip_csrf(post)
    assert "x-csrf-token" not in stripped.headers and "authenticity_token" not in stripped.body
    assert "hello-1-x" in stripped.body


def test_minitest_and_rspec_summaries_are_parsed() -> None:
    out = "Run options: --seed 1\n\n12 runs, 30 assertions, 1 failures, 2 errors, 3 skips\n"
    assert parse_summary(out) == {"runs": 12, "assertions": 30, "failures": 1, "errors": 2, "skips": 3}
    assert parse_summary("Finished in 0.1s\n4 examples, 0 failures, 1 pending\n") == {
        "runs": 4, "assertions": 0, "failures": 0, "errors": 0, "skips": 1}
    assert parse_summary("LoadError: cannot load such file") is None


def test_simplecov_resultset_gives_line_and_branch_percent(tmp_path: Path) -> None:
    data = {"Minitest": {"coverage": {
        "/a.rb": {"lines": [1, 0, None, 2], "branches": {"[:if, 0, 1, 0, 3, 3]": {"[:then, 1]": 1, "[:else, 2]": 0}}},
        "/b.rb": {"lines": [0, None]},
    }}, "Other": {"coverage": {"/b.rb": {"lines": [3, None]}}}}
    path = tmp_path / ".resultset.json"
    path.write_text(json.dumps(data))
    result = coverage(path)
    assert result == {"files": 2, "line_percent": 75.0, "branch_percent": 50.0}  # b.rb line 1 merged: covered
    path.write_text("{not json")
    assert coverage(path) is None


def test_lock_versions_and_bundler_errors() -> None:
    lock = "GEM\n  remote: https://rubygems.org/\n  specs:\n    rails (6.1.7.10)\n      actionpack (= 6.1.7.10)\n" \
           "    puma (5.6.5)\n\nPLATFORMS\n  ruby\n"
    assert installed_versions(lock) == {"rails": "6.1.7.10", "puma": "5.6.5"}
    assert first_error("Fetching\n[!] There was an error parsing `Gemfile`: boom\n").startswith("[!]")


def test_suppressions_are_listed(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "a.rb").write_text("x = 1 # rubocop:disable Style/Foo, Lint/Bar\n")
    config = "AllCops:\n  Exclude:\n    - 'db/**/*'\n    - bin/*\nStyle/X:\n  Enabled: false\n"
    (tmp_path / ".rubocop.yml").write_text(config)
    found = suppressions(tmp_path)
    assert found["rubocop_disable"] == ["app/a.rb:1: Style/Foo, Lint/Bar"]
    assert found["rubocop_exclude"] == ["db/**/*", "bin/*"]


def test_copy_leaves_out_links_out_of_the_project_vcs_and_installed_gems(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / ".git").mkdir(parents=True)
    (src / ".git" / "HEAD").write_text("ref")
    (src / "vendor" / "bundle").mkdir(parents=True)
    (src / "vendor" / "bundle" / "big.gem").write_text("x")
    (src / "vendor" / "ruby_llm").mkdir()
    (src / "vendor" / "ruby_llm" / "lib.rb").write_text("# gem")
    (src / "app.rb").write_text("puts 1")
    secret = tmp_path / "secret.txt"
    secret.write_text("key")
    os.symlink(secret, src / "leak.txt")
    os.symlink("app.rb", src / "alias.rb")
    left = copy_project(src, dest)
    assert (dest / "app.rb").read_text() == "puts 1" and (dest / "vendor" / "ruby_llm" / "lib.rb").is_file()
    assert not (dest / ".git").exists() and not (dest / "vendor" / "bundle").exists()
    assert not (dest / "leak.txt").exists() and left == {"link_out": ["leak.txt"]}
    assert (dest / "alias.rb").is_symlink()


def _ctx(tmp_path: Path) -> StageContext:
    return StageContext(app_dir=tmp_path / "w" / "app", root=tmp_path, evidence_dir=tmp_path / "validation",
                        settings={}, secret_token="0" * 32)


def test_ladder_skips_what_needs_a_stage_that_did_not_pass_and_survives_a_crashing_stage(tmp_path: Path) -> None:
    def boom(ctx: StageContext) -> StageResult:
        raise RuntimeError("harness bug")

    def fails(ctx: StageContext) -> StageResult:
        b = StageBuilder("b")
        b.check("b.x", False, "no")
        return b.result()

    def never(ctx: StageContext) -> StageResult:
        raise AssertionError("must not run")

    stages = [Stage("a", "a", boom), Stage("b", "b", fails), Stage("c", "c", never, needs=("b",)),
              Stage("d", "d", never, needs=("a",))]
    ctx, got = _ctx(tmp_path), []
    run_ladder(stages, ctx, lambda s: None, got.append)
    by_id = {r.id: r for r in got}
    assert by_id["a"].status == "error" and by_id["a"].infra and "harness bug" in by_id["a"].reason
    assert (tmp_path / by_id["a"].evidence[0]).read_text().count("RuntimeError") >= 1
    assert by_id["b"].status == "failed" and by_id["b"].reason == "failed: b.x"
    assert by_id["c"].status == "skipped" and by_id["c"].reason == "needs b, which failed" and not by_id["c"].infra
    assert by_id["d"].status == "skipped" and by_id["d"].infra  # it needs an infra error: not the project's fault


def test_works_counts_only_stages_that_ran() -> None:
    result = ValidationResult(task="t", project="p", engine="native", shipbench_version="0", started_at="now",
                              stages=[StageResult(id="a", status="passed"), StageResult(id="b", status="failed"),
                                      StageResult(id="c", status="skipped", reason="no docker engine", infra=True),
                                      StageResult(id="d", status="error", infra=True)])
    assert result.works == (1, 2)


def test_task_pack_stage_list_is_checked(tmp_path: Path) -> None:
    pack = load_task("rails-chat")
    assert pack.spec.validation.stages == ["deps", "tests", "gates", "boot", "chat", "docker"]
    root = Path(pack.root)
    copy = tmp_path / "pack"
    import shutil

    shutil.copytree(root, copy)
    toml = (copy / "task.toml").read_text().replace('"chat", "docker"]', '"chat", "telepathy"]')
    (copy / "task.toml").write_text(toml)
    with pytest.raises(TaskPackError, match="unknown stage 'telepathy'"):
        load_task(copy)
