"""Data: loading benchmark layouts, validation, splits, preprocessing, the demo dataset."""

from gzsl.data.dataset import GZSLData, Task
from gzsl.data.errors import DataError, GZSLError

__all__ = ["DataError", "GZSLData", "GZSLError", "Task"]
