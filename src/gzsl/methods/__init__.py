"""Generative methods: one module each, behind the interface in :mod:`gzsl.methods.base`."""

from gzsl.methods.amaz import AMAZ
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
from gzsl.methods.gsmflow import GSMFlow
from gzsl.methods.vaecflow import VAECFlow

__all__ = [
    "AMAZ",
    "Checkpoint",
    "CheckpointSchedule",
    "GSMFlow",
    "GaussianBaseline",
    "Generator",
    "SeenData",
    "VAECFlow",
    "available_methods",
    "get_method",
    "register",
]
