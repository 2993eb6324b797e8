"""Optional experiment tracking: checkpoint rows as TensorBoard scalars.

The runner hands every checkpoint row (losses, and U / S / H / T1 where the checkpoint
was evaluated) to a tracker; :func:`tensorboard_tracker` writes them as event files under
the run directory. TensorBoard is an optional extra (``pip install 'gzsl[tensorboard]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gzsl.data.errors import GZSLError

Tracker = Callable[[dict[str, Any]], None]


def tensorboard_tracker(folder: str | Path) -> tuple[Tracker, Callable[[], None]]:
    """A tracker writing scalars ``<phase>/<name>`` at step ``iteration``, and its closer.

    Raises a :class:`GZSLError` naming the install command when TensorBoard is missing.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise GZSLError("--tensorboard needs the tensorboard package, which is not installed. "
                        "Fix: pip install 'gzsl[tensorboard]' (or pip install tensorboard), "
                        "or run without --tensorboard") from error
    writer = SummaryWriter(log_dir=str(folder))

    def track(row: dict[str, Any]) -> None:
        step = int(row["iteration"])
        for name, value in row.items():
            if name in ("phase", "iteration") or not isinstance(value, int | float):
                continue
            writer.add_scalar(f"{row['phase']}/{name}", float(value), step)
        writer.flush()

    return track, writer.close
