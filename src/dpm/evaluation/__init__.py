"""Evaluation: K on held-out data with standard errors."""

from dpm.evaluation.bound import BoundEvaluator

__all__ = ["BoundEvaluator"]
