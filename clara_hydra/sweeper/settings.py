"""The sweeper's settings, read from the ``hydra.sweeper`` node and checked once, before any trial."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clara_hydra.errors import SweepError, with_fix
from clara_hydra.sweeper.config import ClaraOptunaSweeperConf
from clara_hydra.sweeper.deprecated_space import resolve_params
from clara_hydra.sweeper.optuna_objects import parse_directions
from clara_hydra.sweeper.terminator import TerminatorSettings, parse_terminator
from clara_hydra.sweeper.warm_start import WarmStartSource, parse_warm_start


@dataclass(frozen=True)
class Settings:
    """Checked sweeper settings; see :class:`clara_hydra.sweeper.config.ClaraOptunaSweeperConf` for meanings."""

    sampler: Any
    pruner: Any
    directions: list[str]
    storage: Any
    study_name: str | None
    n_trials: int
    n_jobs: int
    max_failure_rate: float
    params: Mapping[str, Any] | None
    custom_search_space: str | None
    baseline_trial: bool
    skip_duplicates: bool
    stop_threshold: float | None
    keep_best: int | None
    fail_fast: int
    retry_interrupted: bool
    report_interval: float = 30.0
    workers: int = 1
    gpus: list[list[str]] | None = None
    heartbeat_interval: int = 10
    grace_period: int = 20
    terminator: TerminatorSettings | None = None
    warm_start: WarmStartSource | None = None

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> Settings:
        """Check and collect the settings Hydra passed to the sweeper.

        Args:
            node: the ``hydra.sweeper`` keys (``_target_`` and ``defaults`` are ignored).

        Returns:
            The settings.

        Raises:
            SweepError: a value is out of range or a combination is not supported.
        """
        defaults = OmegaConf.structured(ClaraOptunaSweeperConf)
        known = {f.name for f in fields(ClaraOptunaSweeperConf)}
        unknown = sorted(set(node) - known)
        if unknown:
            raise SweepError(f"hydra.sweeper: unknown key(s) {unknown}")

        def get(key: str) -> Any:
            value = node.get(key, defaults.get(key))
            return (
                OmegaConf.to_container(value, resolve=True)
                if isinstance(value, DictConfig) and key == "params"
                else value
            )

        search_space = node.get("search_space")
        if isinstance(search_space, DictConfig):
            search_space = OmegaConf.to_container(search_space, resolve=True)
        params = resolve_params(get("params"), search_space)  # type: ignore[arg-type]
        # An explicit max_failure_rate is upstream's rule alone (fail_fast off unless set too); unset, ours.
        rate = get("max_failure_rate")
        fail_fast = get("fail_fast")
        if fail_fast is None:
            fail_fast = 3 if rate is None else 0
        directions = parse_directions(get("direction"))
        settings = cls(
            sampler=get("sampler"),
            pruner=get("pruner"),
            directions=directions,
            storage=get("storage"),
            study_name=get("study_name"),
            n_trials=_int(get("n_trials"), "n_trials", minimum=0),
            n_jobs=_int(get("n_jobs"), "n_jobs", minimum=1),
            max_failure_rate=1.0 if rate is None else float(rate),
            params=params,
            custom_search_space=get("custom_search_space"),
            baseline_trial=bool(get("baseline_trial")),
            skip_duplicates=bool(get("skip_duplicates")),
            stop_threshold=None if get("stop_threshold") is None else float(get("stop_threshold")),
            keep_best=None if get("keep_best") is None else _int(get("keep_best"), "keep_best", minimum=1),
            fail_fast=_int(fail_fast, "fail_fast", minimum=0),
            retry_interrupted=bool(get("retry_interrupted")),
            report_interval=_seconds(get("report_interval"), "report_interval"),
            **_parallel_settings(get),
            terminator=parse_terminator(get, directions),
            warm_start=parse_warm_start(get("warm_start")),
        )
        if not 0.0 <= settings.max_failure_rate <= 1.0:
            raise SweepError(
                with_fix(
                    f"hydra.sweeper.max_failure_rate: must lie in [0, 1], got {settings.max_failure_rate}",
                    "1.0 never stops the sweep for failures, 0.0 stops at the first failed trial",
                )
            )
        if len(directions) > 1:
            for key in ("stop_threshold", "keep_best"):
                if getattr(settings, key) is not None:
                    raise SweepError(
                        with_fix(
                            f"hydra.sweeper.{key}: needs a single-objective study, direction is {directions}",
                            f"set {key}: null",
                        )
                    )
        return settings


def _parallel_settings(get: Any) -> dict[str, Any]:
    """``workers``, ``gpus``, ``heartbeat_interval``, ``grace_period``, checked (see ClaraOptunaSweeperConf)."""
    from clara_hydra.sweeper.worker_role import parse_gpus

    gpus = parse_gpus(get("gpus"))
    raw_workers = get("workers")
    workers = (len(gpus) if gpus else 1) if raw_workers is None else _int(raw_workers, "workers", minimum=1)
    if gpus and len(gpus) != workers:
        raise SweepError(
            with_fix(
                f"hydra.sweeper.workers={workers} but hydra.sweeper.gpus gives {len(gpus)} GPU list(s) {gpus}",
                "give one ':'-separated GPU list per worker, or leave workers unset (one worker per list)",
            )
        )
    interval = _int(get("heartbeat_interval"), "heartbeat_interval", minimum=1)
    raw_grace = get("grace_period")
    grace = 2 * interval if raw_grace is None else _int(raw_grace, "grace_period", minimum=1)
    if grace <= interval:
        raise SweepError(
            with_fix(
                f"hydra.sweeper.grace_period={grace} must exceed heartbeat_interval={interval}",
                f"e.g. grace_period: {2 * interval} (a live worker's trial would be failed as stale otherwise)",
            )
        )
    return {"workers": workers, "gpus": gpus, "heartbeat_interval": interval, "grace_period": grace}


def _int(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SweepError(f"hydra.sweeper.{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def _seconds(value: Any, key: str) -> float:
    """A number of seconds >= 0."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise SweepError(
            with_fix(f"hydra.sweeper.{key}: expected seconds >= 0, got {value!r}", f"e.g. hydra.sweeper.{key}=30")
        )
    return seconds
