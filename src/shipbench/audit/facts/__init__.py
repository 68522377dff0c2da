"""Facts extraction: see `model.ProjectFacts` for what is established and `extract_facts` for how."""

from shipbench.audit.facts.extract import extract_facts
from shipbench.audit.facts.model import GemDecl, LintIssue, Located, ProjectFacts

__all__ = ["GemDecl", "LintIssue", "Located", "ProjectFacts", "extract_facts"]
