"""Task packs (prompts, requirements, rubric, checks). See `pack.load_task`."""

from shipbench.tasks.pack import TaskPack, TaskPackError, load_task

__all__ = ["TaskPack", "TaskPackError", "load_task"]
