"""rails-chat checks: one module per rubric dimension; CHECKS lists every check function."""

from shipbench.audit.checks import Check
from shipbench.tasks.rails_chat.checks import (
    architecture,
    deliverables,
    errors,
    hotwire,
    persistence,
    production,
    rubyllm,
    tests_quality,
)

CHECKS: list[Check] = [
    *deliverables.CHECKS,
    *rubyllm.CHECKS,
    *tests_quality.CHECKS,
    *errors.CHECKS,
    *persistence.CHECKS,
    *hotwire.CHECKS,
    *architecture.CHECKS,
    *production.CHECKS,
]
