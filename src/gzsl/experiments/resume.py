"""Continuing an interrupted run from the state it saved at its last checkpoint.

A run with a directory writes ``resume.pt`` at checkpoints: the method's training state,
the random state, the selection protocol's choices so far and the rows recorded. The
continued run ends with the result the uninterrupted run would have had (on the same
device type and software), and is refused when anything it would continue from changed:
its settings (``config.json`` against the saved state), its data files (checksums
recorded in ``metadata.json`` when it started), or the device type.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import GZSLError
from gzsl.experiments.config import ExperimentConfig
from gzsl.experiments.rundir import RESUME, RunDir
from gzsl.experiments.runner import (
    RESUME_FORMAT,
    Experiment,
    Log,
    RunResult,
    Tracker,
    _finish,
    is_out_of_core,
    load_data,
    resolve_device,
)


def resume_run(run_dir: str | Path, *, root: str | Path | None = None,
               device: str | None = None, data: GZSLData | None = None,
               log: Log | None = None, tracker: Tracker | None = None,
               save_every: int = 1) -> RunResult:
    """Continue the interrupted run in ``run_dir`` from its last saved checkpoint.

    The run's own ``config.json`` defines it; ``root`` defaults to the data folder it
    used. A run interrupted before its first checkpoint starts again from the beginning.
    """
    folder = RunDir(run_dir)
    log = log or (lambda message: None)
    folder.check(resume=True)
    config = folder.experiment_config()
    if is_out_of_core(config.dataset):
        raise GZSLError(f"{folder.path} is an out-of-core {config.dataset} run, which saves no "
                        f"resume state: run it again with --overwrite")
    if device is not None:
        config = dataclasses.replace(config, device=device)
    metadata = folder.metadata()
    if root is None:
        root = metadata.get("root")
    if data is None:
        data = load_data(config, root)
    with folder.claim(resume=True):
        folder.remove_stray_temporaries()
        check_same_data(folder, metadata, data)
        state = None
        if folder.file(RESUME).exists():
            state = load_resume_state(folder, config)
            log(f"resuming {folder.path} from its checkpoint saved after "
                f"{state['seconds']:.0f} s of training")
        else:
            log(f"{folder.path} has no saved checkpoint (interrupted before the first one): "
                f"starting the run again")
        experiment = Experiment(config, data, log, root=root, tracker=tracker,
                                run_dir=folder, save_every=save_every, resume=state)
        if state is None:
            experiment.write_start()
        return _finish(experiment)[0]


def check_same_data(folder: RunDir, metadata: dict[str, Any], data: GZSLData) -> None:
    """Refuse to continue a run on data files other than those it started on.

    ``metadata.json`` keeps the record of what the run began with (file names and
    SHA-256 checksums); a run without that record is not checked.
    """
    recorded = metadata.get("data")
    if not isinstance(recorded, dict) or not recorded:
        return
    saved, current = _checksums(recorded), _checksums(data.source)
    changed = sorted(name for name in saved.keys() | current.keys()
                     if saved.get(name) != current.get(name))
    if changed:
        raise GZSLError(f"the data files of the run in {folder.path} changed since it started "
                        f"({', '.join(changed)}: checksums differ from metadata.json); a run "
                        "continues only on the data it began with. Fix: restore those files "
                        "(or pass --root to where they are), or start a new run")


def _checksums(source: dict[str, Any]) -> dict[str, str]:
    """File role -> SHA-256 of a dataset's provenance record (nested records included)."""
    found: dict[str, str] = {}

    def visit(value: Any, prefix: str) -> None:
        if isinstance(value, dict):
            if "sha256" in value:
                name = str(value.get("role") or value.get("name") or value.get("path") or prefix)
                found[f"{prefix}{name}"] = str(value["sha256"])
            for key, item in value.items():
                visit(item, f"{prefix}{key}/" if key == "converted_from" else prefix)
        elif isinstance(value, list):
            for item in value:
                visit(item, prefix)

    visit(source, "")
    return found


def load_resume_state(folder: RunDir, config: ExperimentConfig) -> dict[str, Any]:
    """Read a run's resume state and check that it belongs to ``config`` and this device type."""
    path = folder.file(RESUME)
    fix = "start the run again with gzsl train --overwrite (or restore the file)"
    try:
        state = folder.load_torch(RESUME)
    except GZSLError as error:
        raise GZSLError(f"{error} ({fix})") from error
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise GZSLError(f"{path} is not a resume state of this gzsl version; {fix}")
    try:
        saved = comparable_config(state["config"])
        saved_device = str(state["device"])
        for key in ("seconds", "stopped", "rng", "training", "progress", "phases"):
            state[key]  # noqa: B018  (presence check)
    except (KeyError, TypeError) as error:
        raise GZSLError(f"{path} is damaged (lacks {error}); {fix}") from error
    wanted = comparable_config(config.to_dict())
    if saved != wanted:
        changed = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
        raise GZSLError(f"{path} was saved by a run with other settings ({', '.join(changed)} "
                        f"differ from config.json); resume needs the run's own settings")
    try:
        saved_type = resolve_device(saved_device).type
    except GZSLError:
        saved_type = saved_device.split(":")[0]
    device = resolve_device(config.device).type
    if saved_type != device:
        raise GZSLError(f"{path} was saved on {saved_type}, this run would use {device}; "
                        f"resume on the same kind of device (--device {saved_type})")
    return state


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config as JSON holds it, without the device: the settings two runs must share
    for one to continue the other.

    Settings added to gzsl after the run was made count at their defaults (a new setting's
    default keeps the old behaviour), so a run interrupted before an upgrade still resumes
    after it; a config that no longer loads is compared as saved.
    """
    with contextlib.suppress(GZSLError):
        config = ExperimentConfig.from_dict(config).to_dict()
    plain = json.loads(json.dumps(config, default=str))
    if isinstance(plain, dict):
        plain.pop("device", None)
    return plain
