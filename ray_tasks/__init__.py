"""Ray adapters: run a stage's batch function as Ray tasks or a Ray Data actor pool."""

from ray_tasks.runner import ensure_ray, run_on_ray, run_stage

__all__ = ["ensure_ray", "run_on_ray", "run_stage"]
