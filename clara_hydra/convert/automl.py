"""Read ``config_automl.json`` (SPEC §6): what carries over to the sweeper, and what is reported as not carried."""

from __future__ import annotations

from typing import Any

from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.jsonpath import join
from clara_hydra.convert.model import AutomlSettings
from clara_hydra.errors import Diagnostic, Level, shorten

_KNOWN_HANDLERS = {"MMARHandler", "StatsHandler", "MMARStatsHandler"}


def parse_automl(doc: Any, file: str) -> tuple[AutomlSettings, list[Diagnostic]]:
    """Settings and diagnostics (info for what is replaced by Optuna/Hydra, warnings for what is dropped)."""
    problems = Problems(file)

    def note(rule: str, msg: str, path: str, level: Level = Level.INFO, fix: str = "") -> None:
        problems.add(rule, msg, path, fix, level)

    if not isinstance(doc, dict):
        note(
            "not-an-object",
            f"config_automl.json must be a JSON object, got {type(doc).__name__}",
            "$",
            Level.ERROR,
            '{"handlers": [...], "executor": {...}, "controller": {...}}',
        )
        return AutomlSettings(), problems.found
    max_rounds = stop = keep = None
    remove = None
    controller = None
    for i, handler in enumerate(doc.get("handlers") or []):
        path = join("handlers", i)
        if not isinstance(handler, dict):
            note(
                "bad-component",
                "an AutoML handler is an object",
                path,
                Level.ERROR,
                '{"name": "MMARHandler", "args": {"num_mmars_to_keep": 5}}',
            )
            continue
        name = handler.get("name") or handler.get("path")
        args = handler.get("args") or {}
        if name == "MMARHandler":
            keep = args.get("num_mmars_to_keep")
            stop = args.get("stop_threshold")
            for k in sorted(set(args) - {"num_mmars_to_keep", "stop_threshold"}):
                note(
                    "automl-not-needed",
                    f"MMARHandler.{k} has no counterpart (Hydra owns job folders and configs)",
                    join(join(path, "args"), k),
                )
        elif name not in _KNOWN_HANDLERS:
            note(
                "automl-not-carried",
                f"AutoML handler {shorten(repr(name))} is not carried over",
                path,
                Level.WARNING,
                "re-implement it as an Optuna callback if you need it",
            )
    executor = doc.get("executor") or {}
    if isinstance(executor, dict):
        remove = (executor.get("args") or {}).get("remove_search_augs")
        if remove is False:
            note(
                "automl-remove-search-augs",
                "remove_search_augs=false is not carried over: composed configs never contain search keys",
                "executor.args.remove_search_augs",
                Level.WARNING,
            )
    ctrl = doc.get("controller") or {}
    if isinstance(ctrl, dict):
        controller = ctrl.get("path") or ctrl.get("name")
        max_rounds = (ctrl.get("args") or {}).get("max_rounds")
        if ctrl.get("path"):
            note(
                "automl-not-carried",
                f"your own controller {shorten(repr(ctrl['path']))} is replaced by Optuna's sampler",
                "controller.path",
                Level.WARNING,
                "choose hydra/sweeper/sampler=tpe|random|grid|cmaes|...",
            )
        elif controller:
            note(
                "automl-controller",
                f"Clara's {controller} is replaced by Optuna's sampler (TPE, or grid for an enum-only space)",
                "controller",
                Level.INFO,
            )
    for key, value in (
        (join("controller.args", "max_rounds"), max_rounds),
        ("stop_threshold", stop),
        ("num_mmars_to_keep", keep),
    ):
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            note("bad-automl-value", f"{key} must be a number, got {shorten(repr(value))}", key, Level.ERROR)
    return AutomlSettings(max_rounds, stop, keep, remove, controller), problems.found
