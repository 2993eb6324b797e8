"""Experiments: presets, configuration resolution, runs and their directories."""
