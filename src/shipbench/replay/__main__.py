"""`python -m shipbench.replay [TRAJECTORY]`: serve a trajectory on an ephemeral loopback port until Ctrl-C.

Invariants: prints the base URL as the first line of stdout; binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from shipbench.replay.server import ReplayServer
from shipbench.replay.trajectory import HELLO_TRAJECTORY, load_trajectory


async def _serve(path: Path) -> None:
    server = ReplayServer(load_trajectory(path))
    print(await server.start(), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else HELLO_TRAJECTORY
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(path))


if __name__ == "__main__":
    main(sys.argv[1:])
