"""Studies: hyperparameter searches and sensitivity analyses on Optuna.

A *study file* (TOML; the shipped ones sit beside this module) names a method, a dataset,
a preset, the seeds of each trial, a search space over settings ``--set`` accepts, a
sampler, an optional pruner and the number of trials. Each trial trains one ordinary run
directory per seed under the study's folder; its objective is the mean *validation* H
over those seeds under the ``val`` protocol, so test data never feeds a search.

* :mod:`.definition`: reading and checking study files (every error before any training);
* :mod:`.running`: Optuna storage, workers, trials, pruning, interrupted-trial recovery;
* :mod:`.report`: the trials table, the best setting as a preset, and figures.
"""

from gzsl.experiments.studies.definition import (
    STUDY_DIR,
    Param,
    StudySpec,
    list_studies,
    load_study,
    parse_study,
)

__all__ = ["STUDY_DIR", "Param", "StudySpec", "list_studies", "load_study", "parse_study"]
