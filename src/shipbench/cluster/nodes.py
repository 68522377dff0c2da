"""Every node that may take a trial runs the same shipbench and the same agent CLI versions (they are part of the
result), checked before anything is scheduled.

Invariants: one probe per alive node, pinned to it (hard node affinity); a node whose versions differ from the
reference (the driver's, else the first node's) refuses the run with one line naming the node and the versions; a
node where a suite agent is not installed refuses it too (its trials could only fail as infra).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

from shipbench import __version__
from shipbench.agents.discovery import detect_version, find_binary
from shipbench.agents.registry import get_adapter
from shipbench.config import ConfigError

PROBE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class NodeVersions:
    node_id: str
    host: str
    shipbench: str
    agents: dict[str, str | None]  # agent name -> its CLI version (None: not installed or no version)


def local_versions(agents: list[str], node_id: str = "") -> NodeVersions:
    """This process's shipbench and agent CLI versions (what a node probe returns)."""

    async def probe() -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for name in agents:
            adapter = get_adapter(name)
            binary = find_binary(adapter.capabilities, None)
            out[name] = await detect_version(adapter, binary) if binary is not None else None
        return out

    return NodeVersions(node_id, socket.gethostname(), __version__, asyncio.run(probe()))


def check_nodes(ray: Any, agents: list[str], reference: NodeVersions | None) -> list[NodeVersions]:
    """Probe every alive node; a ConfigError listing each node that differs from the reference or lacks an agent."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(local_versions)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(agents, n["NodeID"]) for n in nodes]
    try:
        found: list[NodeVersions] = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # a node lost during the probe, or the probe timed out: one line, not a traceback
        raise ConfigError(f"executor ray: the node version probe failed: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    problems = node_problems(found, reference)
    if problems:
        raise ConfigError("; ".join(problems))
    return found


def node_problems(found: list[NodeVersions], reference: NodeVersions | None) -> list[str]:
    """One line per node that cannot take this suite's trials."""
    if not found:
        return ["the Ray cluster has no alive node"]
    ref = reference if reference is not None and all(reference.agents.values()) else found[0]
    problems: list[str] = []
    for node in found:
        where = f"node {node.host} ({node.node_id[:12]})"
        missing = [a for a, v in node.agents.items() if v is None]
        if missing:
            problems.append(f"{where}: agent CLI {', '.join(missing)} not installed (or no version): install the "
                            "pinned CLIs on every node (docs/cluster.md)")
            continue
        if node.shipbench != ref.shipbench:
            problems.append(f"{where}: shipbench {node.shipbench}, expected {ref.shipbench}")
        differs = {a: v for a, v in node.agents.items() if ref.agents.get(a) not in (None, v)}
        for agent, version in differs.items():
            problems.append(f"{where}: {agent} {version}, expected {ref.agents[agent]} (versions are part of the "
                            "result: every node must run the same CLI)")
    return problems
