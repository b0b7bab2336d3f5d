"""The one place the sweeper reaches into Optuna's and Hydra's private names.

Each helper names the private attribute it reads and why no public one serves; every one is pinned by
``tests/sweeper/test_optuna_private.py``, which fails loudly when the library renames or changes it.
This module imports neither library at module level (``clara-hydra --help`` imports no Optuna).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage


def trial_id_of(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage id of a (live or frozen) trial.

    Optuna has no public trial id: ``number`` is per study, while every storage method
    (``set_trial_system_attr``, ``set_trial_state_values``, ``get_trial``) takes ``_trial_id``.
    """
    return int(trial._trial_id)


def study_id_of(study: optuna.Study) -> int:
    """The storage id of a study (``study._study_id``); the public route is a storage round trip by name."""
    return int(study._study_id)


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage object a study was opened on (``study._storage``); Optuna exposes no public getter."""
    storage: BaseStorage = study._storage
    return storage


def heartbeat_enabled(storage: Any) -> bool:
    """Whether Optuna itself keeps heartbeats on ``storage`` (an RDB storage opened with an interval).

    ``is_heartbeat_enabled`` lives only in ``optuna.storages._heartbeat``.
    """
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(storage))


def stale_trial_ids(storage: Any, study_id: int) -> list[int]:
    """The ids of RUNNING trials whose Optuna heartbeat is older than the storage's grace period.

    Judged by the database's clock. Optuna's only public route, ``fail_stale_trials``, also fails and
    reports them, and skips the check that the trial's worker process is gone; we need the list.
    """
    return list(storage._get_stale_trial_ids(study_id))


def is_basic_launcher(launcher: Any) -> bool:
    """Whether ``launcher`` is Hydra's basic (in-process, one job at a time) launcher.

    The class lives in ``hydra._internal.core_plugins.basic_launcher``; Hydra exports no public name.
    """
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    return isinstance(launcher, BasicLauncher)


def override_element_text(value: Any, space_after_sep: bool = False) -> str:
    """Hydra's own text for one override value element (``Override._get_value_element_as_str``).

    Private but stable in hydra-core 1.3 (pinned <1.4): the formatter Hydra itself uses for overrides.
    """
    from hydra.core.override_parser.types import Override

    text: str = Override._get_value_element_as_str(value, space_after_sep=space_after_sep)
    return text


def job_result(ret: Any) -> Any:
    """What a Hydra job returned, or the exception it raised (``JobReturn._return_value``).

    The public ``JobReturn.return_value`` re-raises a failed job's exception and prints Hydra's error
    banner to stderr first; a sweep classifies the exception (pruned, out of memory, a user error) instead.
    """
    return ret._return_value
