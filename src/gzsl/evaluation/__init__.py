"""Evaluation: metrics, final classifiers, and scoring a generator on a task."""
