"""rails-chat checks for the `errors` dimension."""

from __future__ import annotations

from shipbench.audit.checks import Check

CHECKS: list[Check] = []
