"""Run a suite's trials on a Ray cluster (`shipbench run --executor ray`): see driver.py and worker.py."""

from shipbench.cluster.driver import RayRun, connect, run_on_ray
from shipbench.cluster.worker import TrialOutcome, TrialTask, run_trial_task

__all__ = ["RayRun", "TrialOutcome", "TrialTask", "connect", "run_on_ray", "run_trial_task"]
