"""Provider keys leave the harness's environment: re-executed without them, handed over on a pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shipbench.runner.keyhold import KEY_FD, held_keys, key_names

FAKE = "sk-or-v1-" + "0badc0de" * 8

PROBE = """
import json, os, sys
from shipbench.runner.keyhold import hand_over, held_keys
hand_over(os.environ, [sys.executable, __file__])
keys = held_keys()
print(json.dumps({
    "pid": os.getpid(),
    "held": keys,
    "proc_environ": open("/proc/self/environ", "rb").read().decode("utf-8", "replace"),
    "environ": dict(os.environ),
    "child_env": os.popen("env").read(),
}))
"""


def test_key_names_are_the_provider_keys_that_are_set() -> None:
    env = {"OPENROUTER_API_KEY": "x", "MY_API_KEY": "y", "EMPTY_API_KEY": " ", "PATH": "/bin", "TOKEN": "z"}
    assert key_names(env) == ["MY_API_KEY", "OPENROUTER_API_KEY"]


def test_the_reexecuted_harness_holds_the_key_in_memory_only(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    env = {**os.environ, "OPENROUTER_API_KEY": FAKE, "OTHER_API_KEY": "sk-other-123"}
    env.pop(KEY_FD, None)
    started = subprocess.run([sys.executable, str(probe)], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    out = json.loads(started.stdout)
    assert out["held"] == {"OPENROUTER_API_KEY": FAKE, "OTHER_API_KEY": "sk-other-123"}
    assert FAKE not in out["proc_environ"] and "sk-other-123" not in out["proc_environ"]
    assert "OPENROUTER_API_KEY" not in out["environ"] and KEY_FD not in out["environ"]
    assert FAKE not in out["child_env"]  # no child inherits it


def test_without_keys_nothing_is_reexecuted_and_nothing_is_held(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != KEY_FD}
    out = json.loads(
        subprocess.run(
            [sys.executable, str(probe)], env=env, capture_output=True, text=True, timeout=60, check=True
        ).stdout
    )
    assert out["held"] == {}


def test_a_bad_fd_value_is_ignored() -> None:
    env = {KEY_FD: "not-a-number"}
    assert held_keys(env) == {}
    assert KEY_FD not in env


def test_the_cli_run_goes_through_the_handover_and_still_works(tmp_path: Path) -> None:
    env = {**os.environ, "OPENROUTER_API_KEY": FAKE}
    env.pop(KEY_FD, None)
    done = subprocess.run(
        [sys.executable, "-m", "shipbench", "run", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "missing.toml" in (done.stdout + done.stderr)


def test_a_suites_custom_key_variable_is_handed_over_too(tmp_path: Path) -> None:
    """`api_key_env = "LOCAL_LLM_TOKEN"` does not end in _API_KEY: the suite file on the command line names it."""
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "s"\n[[models]]\nid = "m"\nmodel = "x"\nprovider = "openai_compatible"\n'
                     'base_url = "http://127.0.0.1:1"\napi_key_env = "LOCAL_LLM_TOKEN"\n', encoding="utf-8")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE.replace("[sys.executable, __file__]", f"[sys.executable, __file__, {str(suite)!r}]"),
                     encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != KEY_FD}
    env["LOCAL_LLM_TOKEN"] = "tok-custom-4242"
    out = json.loads(subprocess.run([sys.executable, str(probe), str(suite)], env=env, capture_output=True,
                                    text=True, timeout=60, check=True).stdout)
    assert out["held"] == {"LOCAL_LLM_TOKEN": "tok-custom-4242"}
    assert "tok-custom-4242" not in out["proc_environ"] and "tok-custom-4242" not in out["child_env"]
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [", encoding="utf-8")
    from shipbench.runner.keyhold import suite_key_envs

    assert suite_key_envs([str(broken), str(tmp_path / "missing.toml"), "--out"]) == set()
    assert suite_key_envs(["run", str(suite)]) == {"LOCAL_LLM_TOKEN"}
