"""replay: a scripted upstream that speaks the four provider wires and replays a recorded trajectory."""

from shipbench.replay.server import WORKSPACE_HEADER, Fault, ReplayServer
from shipbench.replay.trajectory import HELLO_TRAJECTORY, PhaseScript, Step, Trajectory, load_trajectory

__all__ = [
    "HELLO_TRAJECTORY",
    "WORKSPACE_HEADER",
    "Fault",
    "PhaseScript",
    "ReplayServer",
    "Step",
    "Trajectory",
    "load_trajectory",
]
