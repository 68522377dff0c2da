"""Preflight: can every selected model's upstream serve the run (reachable, model listed, wires, tool calls,
context)? See checks.py; `shipbench preflight SUITE.toml` and `shipbench run` (unless --no-preflight) run it."""

from shipbench.preflight.checks import Timeouts, raise_for_failures, run_preflight, selected
from shipbench.preflight.report import ModelPreflight, PreflightCheck, PreflightReport, failure_message

__all__ = [
    "ModelPreflight",
    "PreflightCheck",
    "PreflightReport",
    "Timeouts",
    "failure_message",
    "raise_for_failures",
    "run_preflight",
    "selected",
]
