"""Rubric audit of a finished project: facts, API verification, checks, scoring, reports."""
