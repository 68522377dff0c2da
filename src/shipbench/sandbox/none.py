"""The `none` backend: an explicit opt-out, the agent runs directly as the harness's user.

Invariants: argv is returned unchanged; it isolates nothing (every capability flag is False), so a trial run
with it can read the harness's environment (the provider key) and every file the user can: the trial records it.
"""

from __future__ import annotations

from shipbench.sandbox.base import Network, SandboxCapabilities, SandboxRequest

CAPABILITIES = SandboxCapabilities(
    name="none",
    isolates_processes=False,
    isolates_filesystem=False,
    private_tmp=False,
    networks=frozenset({"open"}),
    platforms=frozenset({"linux", "darwin"}),
)


class NoSandbox:
    capabilities = CAPABILITIES

    def problem(self) -> str | None:
        return None

    def network_problem(self, network: Network) -> str | None:
        return None if network in CAPABILITIES.networks else "it isolates nothing, so it cannot restrict the network"

    def wrap(self, argv: list[str], request: SandboxRequest) -> list[str]:
        return list(argv)
