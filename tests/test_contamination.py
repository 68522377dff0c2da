"""What an agent's tool calls name outside its workspace, and which of it is the grading side."""

from __future__ import annotations

import json
from pathlib import Path

from shipbench.runner.contamination import Boundaries, paths_in, scan_tool_inputs, trial_boundaries

BOUNDS = Boundaries(
    workspace="/r/suite/t1/workspace",
    home="/r/suite/t1/home",
    grading=("/r", "/opt/pack/rails_chat", "/src/shipbench"),
    allowed=("/src/.tools",),
)


def _cmd(command: str) -> str:
    return json.dumps({"command": command})


def test_grading_reads_are_counted_own_and_system_paths_are_not() -> None:
    found = scan_tool_inputs(
        [
            _cmd("cat app/models/chat.rb && ls ~/.config && cat /tmp/x.log"),  # its own places
            _cmd("ruby -v; cat /usr/lib/ruby/3.1.0/json.rb /etc/hosts"),  # system: neither listed nor counted
            _cmd("cat ../../t2/workspace/app/services/reply.rb"),  # another trial, by a relative escape
            json.dumps({"path": "/opt/pack/rails_chat/rubric.toml"}),  # the rubric
            _cmd("grep -r score /r/suite/t9/audit.json"),  # another trial's audit
            _cmd("ls /home/someone/projects"),  # outside but not grading: listed only
            _cmd("/src/.tools/npm/bin/codex --version"),  # its own CLI's install, allowed
        ],
        BOUNDS,
    )
    assert found.grading == [
        "/r/suite/t2/workspace/app/services/reply.rb",
        "/opt/pack/rails_chat/rubric.toml",
        "/r/suite/t9/audit.json",
    ]
    assert found.grading_count == 3 and found.contaminated
    assert found.outside == ["/home/someone/projects"]


def test_a_clean_session_is_not_contaminated_and_repeats_count_once() -> None:
    clean = scan_tool_inputs([_cmd("bin/rails test"), json.dumps({"path": "Gemfile"})], BOUNDS)
    assert not clean.contaminated and clean.outside == [] and clean.grading == []
    twice = scan_tool_inputs([_cmd("cat /r/x"), _cmd("cat /r/x")], BOUNDS)
    assert twice.grading_count == 1


def test_path_tokens_survive_json_escapes_and_punctuation() -> None:
    text = json.dumps({"command": "cat '/r/a b' \"/r/c\"; echo x>/r/d,/r/e"}).replace("/", "\\/")
    assert list(paths_in(text)) == ["/r/a", "/r/c", "/r/d", "/r/e"]
    assert list(paths_in("ratio 3/4 and http://x/y")) == []  # no path starts inside a word or a URL


def test_trial_boundaries_cover_the_results_dir_the_task_and_this_checkout(tmp_path: Path) -> None:
    bounds = trial_boundaries(tmp_path / "out/s/t/workspace", tmp_path / "out/s/t/home", tmp_path / "out", tmp_path)
    import shipbench

    package = str(Path(shipbench.__file__).resolve().parent)
    assert str((tmp_path / "out").resolve()) in bounds.grading and package in bounds.grading
    assert bounds.workspace.endswith("out/s/t/workspace")


def test_relative_paths_inside_written_file_content_are_not_the_workspaces() -> None:
    """`File.expand_path("../Gemfile", __dir__)` in config/boot.rb is relative to that file: writing it reads
    nothing outside the workspace (the bundled demo's claude trial was flagged contaminated by it); a shell
    command's `../` and an absolute path in content still count."""
    import json

    from shipbench.runner.contamination import Boundaries, scan_tool_inputs

    bounds = Boundaries(workspace="/out/s/t/workspace", home="/out/s/t/home", grading=("/out",))
    boot = json.dumps({"file_path": "config/boot.rb", "content": 'ENV["BUNDLE_GEMFILE"] ||= '
                       'File.expand_path("../Gemfile", __dir__)\nrequire "bundler/setup"\n'})
    assert scan_tool_inputs([boot], bounds).grading_count == 0
    assert scan_tool_inputs([json.dumps({"command": "cat ../trial.json"})], bounds).grading == ["/out/s/t/trial.json"]
    peek = json.dumps({"file_path": "x.rb", "content": 'a = 1\nFile.read("/out/s/other/audit.json")\n'})
    assert scan_tool_inputs([peek], bounds).grading == ["/out/s/other/audit.json"]
    clipped = '{"command": "cat ../trial.json'  # a clipped input is not JSON: scanned as text
    assert scan_tool_inputs([clipped], bounds).grading_count == 1
    heredoc = json.dumps({"command": "/bin/bash -lc \"mkdir -p config && cat > /out/s/t/workspace/config/boot.rb "
                          "<<'EOF'\nENV[\\\"BUNDLE_GEMFILE\\\"] ||= "
                          "File.expand_path(\\\"../Gemfile\\\", __dir__)\nEOF\n"
                          "cat ../../t2/trial.json\""})  # codex writes files with heredocs; the cat still counts
    assert scan_tool_inputs([heredoc], bounds).grading == ["/out/s/t2/trial.json"]
    multi = json.dumps({"command": "cd /out/s/t/workspace\ncat ../../t2/trial.json"})  # a multi-line shell command
    assert scan_tool_inputs([multi], bounds).grading == ["/out/s/t2/trial.json"]
    script = json.dumps({"file_path": "peek.py", "content": 'import sys\nprint(open("../../t2/audit.json").read())\n'})
    assert scan_tool_inputs([script], bounds).grading == ["/out/s/t2/audit.json"]  # run from the workspace
