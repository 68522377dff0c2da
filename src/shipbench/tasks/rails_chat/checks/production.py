"""rails-chat checks for the `production` dimension."""

from __future__ import annotations

from shipbench.audit.checks import Check

CHECKS: list[Check] = []
