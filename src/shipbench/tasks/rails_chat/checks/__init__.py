"""rails-chat checks: one module per rubric dimension; CHECKS lists every check function."""

from shipbench.audit.checks import Check

CHECKS: list[Check] = []
