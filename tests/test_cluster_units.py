"""The Ray executor's pure parts: cluster-wide slots, the node version check, the CLI's executor override, and a
trial task run without Ray (the node's code path is the local executor's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.test_trial_support import suite_config, write_task

from shipbench.cluster.driver import Slots
from shipbench.cluster.nodes import NodeVersions, node_problems
from shipbench.config import ConfigError
from shipbench.runner.command import with_executor
from shipbench.runner.plan import expand_plans
from shipbench.store.layout import SuitePaths
from shipbench.tasks.pack import load_task


def _plans(tmp: Path, **extra: object):  # type: ignore[no-untyped-def]
    task_dir = write_task(tmp / "task", {"one": "Phase one. FILE=one.txt"})
    config = suite_config(task_dir, **extra)
    return config, expand_plans(config, load_task(str(task_dir)), SuitePaths(tmp / "out" / config.name))


def test_slots_hold_provider_and_model_limits_across_the_cluster(tmp_path: Path) -> None:
    config, plans = _plans(tmp_path, repeats=3, provider_concurrency={"replay": 2},
                           models=[{"id": "rp", "model": "m", "provider": "replay", "concurrency": 1}])
    slots = Slots.for_suite(config, jobs=None)
    first, second, third = plans
    assert slots.free(first)
    slots.take(first)
    assert not slots.free(second)  # the model's own limit (1) is the tighter one
    slots.give(first)
    assert slots.free(second)
    capped = Slots.for_suite(config.model_copy(update={"provider_concurrency": {}}), jobs=2)
    capped.models = {}
    capped.take(first)
    capped.take(second)
    assert not capped.free(third)  # --jobs caps the tasks in flight


def _node(node_id: str, shipbench: str = "0.1.0", **agents: str | None) -> NodeVersions:
    return NodeVersions(node_id, "host", shipbench, dict(agents))


def test_a_node_with_other_versions_or_a_missing_cli_is_refused() -> None:
    ref = _node("driver", opencode="1.18.33", claude="2.1.330")
    assert node_problems([_node("n1", opencode="1.18.33", claude="2.1.330")], ref) == []
    [other] = node_problems([_node("n2aaaaaaaaaaaa", opencode="1.18.30", claude="2.1.330")], ref)
    assert "opencode 1.18.30, expected 1.18.33" in other and "n2aaaaaaaaaa" in other
    [missing] = node_problems([_node("n3", opencode=None, claude="2.1.330")], ref)
    assert "opencode not installed" in missing
    [old] = node_problems([_node("n4", "0.0.9", opencode="1.18.33", claude="2.1.330")], ref)
    assert "shipbench 0.0.9, expected 0.1.0" in old
    assert node_problems([], ref) == ["the Ray cluster has no alive node"]
    # a driver without the CLIs: the first node is the reference, and the others must agree with it
    nodes = [_node("a", opencode="1.18.33"), _node("b", opencode="1.18.34")]
    assert len(node_problems(nodes, _node("driver", opencode=None))) == 1


def test_cli_executor_override(tmp_path: Path) -> None:
    config, _ = _plans(tmp_path)
    assert with_executor(config, None, None) is config
    assert with_executor(config, "ray", None).executor.kind == "ray"
    joined = with_executor(config, None, "127.0.0.1:6379").executor
    assert (joined.kind, joined.address) == ("ray", "127.0.0.1:6379")
    with pytest.raises(ConfigError, match="--executor 'slurm'"):
        with_executor(config, "slurm", None)


def test_results_at_a_url_need_the_ray_executor(tmp_path: Path) -> None:
    from io import StringIO

    from rich.console import Console

    from shipbench.runner.command import run_command

    config, _ = _plans(tmp_path)
    with pytest.raises(ConfigError, match="need --executor ray"):
        run_command(config, out="memory://results", console=Console(file=StringIO()))


def test_a_trial_asks_the_suites_resources_of_its_node(tmp_path: Path) -> None:
    from shipbench.cluster.driver import _task_options

    config, _ = _plans(tmp_path, executor={"kind": "ray", "cpus_per_trial": 2, "gpus_per_trial": 1,
                                           "memory_gb": 1.5, "resources": {"agent_slot": 1}, "max_retries": 2})
    assert _task_options(config) == {"num_cpus": 2, "num_gpus": 1, "memory": int(1.5 * 1024**3),
                                     "resources": {"agent_slot": 1}, "max_retries": 2, "retry_exceptions": False}


def test_a_local_ray_without_keys_and_a_url_with_a_password_are_refused(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from io import StringIO

    from rich.console import Console

    from shipbench.cluster.driver import RayRun, run_on_ray
    from shipbench.runner.command import run_command

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    config, plans = _plans(tmp_path, executor={"kind": "ray"},
                           models=[{"id": "or", "model": "x/y", "provider": "openrouter"}])
    run = RayRun(config=config, plans=plans, out=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="does not get the provider keys"):
        run_on_ray(run, Console(file=StringIO()), ray_module=object())  # refused before Ray is touched
    with pytest.raises(ConfigError, match="holds a password"):
        run_command(config, out="s3://user:secret@bucket/x", console=Console(file=StringIO()))
