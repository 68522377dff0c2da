"""shipbench: benchmark LLM coding agents on whole-project tasks.

The public API is re-exported here; everything else is implementation.
"""

__version__ = "0.1.0"

from shipbench.audit.engine import AuditInputError, audit_project
from shipbench.audit.models import ApiCall, AuditResult, DimensionScore, Evidence, Finding
from shipbench.tasks import TaskPack, TaskPackError, load_task

__all__ = [
    "ApiCall",
    "AuditInputError",
    "AuditResult",
    "DimensionScore",
    "Evidence",
    "Finding",
    "TaskPack",
    "TaskPackError",
    "__version__",
    "audit_project",
    "load_task",
]
