"""The converter as one pure function: documents in, ``{relative path: text}`` out (plus the report).

parse -> typed model -> passes (resolve classes, bind the search space, check alternatives, lower groups) -> emit.
No file I/O here: :mod:`clara_hydra.convert.io` reads and writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clara_hydra.convert.alternatives import check_alternatives, lower_groups
from clara_hydra.convert.automl import parse_automl
from clara_hydra.convert.emit import JOB_DIR_VARIABLES, Variables, emit_tree
from clara_hydra.convert.lower import Lowering
from clara_hydra.convert.model import AutomlSettings, ClaraConfig
from clara_hydra.convert.parse import Parser
from clara_hydra.convert.report import render_report
from clara_hydra.convert.search import RESERVED_KEYS, SearchBinder, SearchPlan, discrete_size, values_of
from clara_hydra.errors import ConfigError, Diagnostic, InputFileError, Level


@dataclass(frozen=True)
class Document:
    """One input file: its name (for messages) and its bytes."""

    name: str
    data: bytes

    def load(self) -> Any:
        try:
            return json.loads(self.data)
        except UnicodeDecodeError as exc:
            raise InputFileError(f"{self.name}: not UTF-8 text ({exc})") from None
        except json.JSONDecodeError as exc:
            raise InputFileError(
                f"{self.name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
                "fix the syntax (Clara files are plain JSON: no comments, no trailing commas)"
            ) from None


@dataclass
class Conversion:
    """The result of converting one Clara config."""

    files: dict[str, str]
    report: str
    diagnostics: list[Diagnostic]
    config: ClaraConfig
    plan: SearchPlan
    required: tuple[str, ...] = ()
    points: int = 1
    dimensions: int = 0
    unconverted: list[str] = field(default_factory=list)


def convert_documents(
    train: Document, env: Document | None = None, automl: Document | None = None, sets: Mapping[str, Any] | None = None
) -> Conversion:
    """Convert one Clara training config (with its environment.json, config_automl.json and ``--set`` values).

    Raises:
        ConfigError: the config breaks one or more rules; every problem found is listed.
        InputFileError: a document is not valid JSON.
    """
    sets = dict(sets or {})
    doc = train.load()
    _check_kind(doc, train.name)
    parser = Parser(train.name)
    config = parser.parse(doc, train.data)
    diagnostics = list(parser.diagnostics)
    env_values: dict[str, Any] = {}
    if env is not None:
        env_doc = env.load()
        if not isinstance(env_doc, dict):
            raise ConfigError(
                [
                    Diagnostic(
                        "not-an-object",
                        "environment.json must be a JSON object",
                        "$",
                        '{"DATA_ROOT": "/data", "DATASET_JSON": "/data/dataset.json"}',
                        file=env.name,
                    )
                ]
            )
        env_values = {k: v for k, v in env_doc.items() if not k.startswith(("_", "/"))}
    settings: AutomlSettings | None = None
    if automl is not None:
        settings, automl_diags = parse_automl(automl.load(), automl.name)
        diagnostics.extend(automl_diags)

    low = Lowering(config, SearchPlan())
    binder = SearchBinder(config, low.params_of, frozenset(env_values) | frozenset(sets))
    plan = binder.run()
    low.plan = plan
    diagnostics.extend(binder.diagnostics)
    defaults = {**env_values, **values_of(plan, config.first_level), **sets}
    diagnostics.extend(check_alternatives(config, plan, defaults))
    taken = set(config.first_level) | set(plan.variables) | set(env_values) | set(sets) | set(RESERVED_KEYS)
    groups = lower_groups(config, plan, defaults, taken)

    job_dir: list[str] = []
    required: list[str] = []

    def variables_of() -> Variables:
        values: dict[str, Any] = {}
        names = [*low.used_vars, *[k for k in env_values if k not in low.used_vars]]
        for name in names:
            if name in config.first_level or name in plan.variables:
                continue
            value = sets.get(name, env_values.get(name, "???"))
            if name in JOB_DIR_VARIABLES and (value == "???" or (isinstance(value, str) and not os.path.isabs(value))):
                rel = JOB_DIR_VARIABLES[name] if value == "???" else value
                value = "${clara.job_dir:" + rel + "}"
                job_dir.append(name)
            elif value == "???":
                required.append(name)
            values[name] = value
        return Variables(values, tuple(required), tuple(job_dir))

    study = os.path.splitext(os.path.basename(train.name))[0]
    files = emit_tree(low, groups, variables_of, settings, study, sets)
    diagnostics.extend(low.diagnostics)
    for name in job_dir:
        diagnostics.append(
            Diagnostic(
                "job-folder",
                f"{name} points into the Hydra job's output folder "
                f"(${{clara.job_dir:...}}), so every trial keeps its own outputs",
                name,
                level=Level.INFO,
                file=train.name,
            )
        )
    for name in required:
        diagnostics.append(
            Diagnostic(
                "required-value",
                f"variable '{name}' has no value (first used at {low.used_vars.get(name, '?')})",
                name,
                f"set it: `python train.py {name}=...`, or convert with --set {name}=... or --env environment.json",
                Level.INFO,
                train.name,
            )
        )
    errors = [d for d in diagnostics if d.level is Level.ERROR]
    if errors:
        raise ConfigError(
            errors + [d for d in diagnostics if d.level is Level.WARNING], f"{len(errors)} error(s) in {train.name}"
        )
    conv = Conversion(
        files,
        "",
        diagnostics,
        config,
        plan,
        tuple(required),
        discrete_size(plan.dimensions),
        len(plan.dimensions),
        list(low.unconverted),
    )
    conv.report = render_report(conv, groups, settings)
    conv.files["conversion_report.md"] = conv.report
    return conv


def _check_kind(doc: Any, name: str) -> None:
    """Refuse an environment.json or config_automl.json given where a training config is expected."""
    if not isinstance(doc, dict) or any(k in doc for k in ("train", "validate", "search", "evaluator", "trainer")):
        return
    if {"controller", "executor"} & doc.keys():
        raise ConfigError(
            [
                Diagnostic(
                    "not-a-training-config",
                    "this is a config_automl.json (it has 'controller'/'executor'), not a training config",
                    "$",
                    "pass it with --automl next to the training config: clara-hydra convert "
                    "config_train.json --automl config_automl.json",
                    file=name,
                )
            ]
        )
    if doc and all(not isinstance(v, (dict, list)) for v in doc.values()) and any(k.isupper() for k in doc):
        raise ConfigError(
            [
                Diagnostic(
                    "not-a-training-config",
                    f"this looks like an environment.json (only variables: {sorted(doc)[:6]}), not a training config",
                    "$",
                    "pass it with --env next to the training config, or convert the MMAR folder",
                    file=name,
                )
            ]
        )
