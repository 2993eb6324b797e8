"""Generative methods: one module each, behind the interface in :mod:`gzsl.methods.base`."""

from gzsl.methods.base import (
    Checkpoint,
    CheckpointSchedule,
    Generator,
    SeenData,
    available_methods,
    get_method,
    register,
)
from gzsl.methods.gaussian import GaussianBaseline

__all__ = [
    "Checkpoint",
    "CheckpointSchedule",
    "GaussianBaseline",
    "Generator",
    "SeenData",
    "available_methods",
    "get_method",
    "register",
]
