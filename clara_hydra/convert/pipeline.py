"""The converter as one pure function: documents in, ``{relative path: text}`` out (plus the report).

A tuple of passes run in order, each a function of the previous one's typed output (:mod:`.stages`), as sqlglot's
optimizer runs its ``RULES``::

    parse -> resolve (classes, signatures) -> bind (search space) -> check -> wire (Clara 4.0's implicit
    arguments) -> lower (Hydra nodes) -> emit (print)

Every pass adds its diagnostics to what it received; ``emit`` raises them as one error before printing anything.
No file I/O here: :mod:`clara_hydra.convert.io` reads and writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from clara_hydra.convert.alternatives import check_alternatives
from clara_hydra.convert.automl import parse_automl
from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.emit import emit
from clara_hydra.convert.jsonload import Document
from clara_hydra.convert.model import AutomlSettings
from clara_hydra.convert.parse import Parser
from clara_hydra.convert.resolve import resolve
from clara_hydra.convert.search import SearchBinder, values_of
from clara_hydra.convert.stages import Bound, Checked, Conversion, Inputs, Parsed, Resolved
from clara_hydra.convert.tree import lower
from clara_hydra.convert.wiring import wire
from clara_hydra.errors import ConfigError
from clara_hydra.keywords import Clara

__all__ = ["PASSES", "Conversion", "Document", "Inputs", "convert_documents", "run_passes"]


def parse(inputs: Inputs) -> Parsed:
    """Read the documents and parse the training config into the typed model."""
    doc, diagnostics = inputs.train.load()
    _check_kind(doc, inputs.train.name)
    parser = Parser(inputs.train.name)
    config = parser.parse(doc, inputs.train.data)
    diagnostics += parser.diagnostics
    env_values: dict[str, Any] = {}
    if inputs.env is not None:
        env_doc, env_diags = inputs.env.load()
        diagnostics += env_diags
        if not isinstance(env_doc, dict):
            raise ConfigError(
                [
                    Problems(inputs.env.name).add(
                        "not-an-object",
                        "environment.json must be a JSON object",
                        "$",
                        '{"DATA_ROOT": "/data", "DATASET_JSON": "/data/dataset.json"}',
                    )
                ]
            )
        env_values = {k: v for k, v in env_doc.items() if not Clara.is_comment(k)}
    settings: AutomlSettings | None = None
    if inputs.automl is not None:
        automl_doc, automl_diags = inputs.automl.load()
        settings, more = parse_automl(automl_doc, inputs.automl.name)
        diagnostics += automl_diags + more
    return Parsed(inputs, config, env_values, settings, tuple(diagnostics))


def bind(resolved: Resolved) -> Bound:
    """Bind the search space: every searched or applied value gets its top-level key."""
    parsed = resolved.parsed
    params = {path: res.params for path, res in resolved.resolutions.items()}
    renamed = {path: res.renamed_args for path, res in resolved.resolutions.items() if res.renamed_args}
    env_names = frozenset(parsed.env_values) | frozenset(parsed.inputs.sets)
    binder = SearchBinder(parsed.config, params, env_names, renamed)
    plan = binder.run()
    return Bound(resolved, plan, (*resolved.diagnostics, *binder.diagnostics))


def check(bound: Bound) -> Checked:
    """Check the rules over the whole space, at the defaults and at every discrete point."""
    parsed = bound.resolved.parsed
    defaults = {**parsed.env_values, **values_of(bound.plan, parsed.config.first_level), **parsed.inputs.sets}
    found = check_alternatives(parsed.config, bound.plan, defaults)
    return Checked(bound, defaults, (*bound.diagnostics, *found))


#: The passes, in order; each takes the previous one's output.
PASSES: tuple[Callable[[Any], Any], ...] = (parse, resolve, bind, check, wire, lower, emit)


def run_passes(inputs: Inputs, passes: tuple[Callable[[Any], Any], ...] = PASSES) -> Any:
    """Run ``passes`` in order from ``inputs`` (a prefix of :data:`PASSES` gives that stage's output)."""
    value: Any = inputs
    for step in passes:
        value = step(value)
    return value


def convert_documents(
    train: Document, env: Document | None = None, automl: Document | None = None, sets: Mapping[str, Any] | None = None
) -> Conversion:
    """Convert one Clara training config (with its environment.json, config_automl.json and ``--set`` values).

    Raises:
        ConfigError: the config breaks one or more rules; every problem found is listed.
        InputFileError: a document is not valid JSON.
    """
    conv: Conversion = run_passes(Inputs(train, env, automl, dict(sets or {})))
    return conv


def _check_kind(doc: Any, name: str) -> None:
    """Refuse an environment.json or config_automl.json given where a training config is expected."""
    if not isinstance(doc, dict) or any(k in doc for k in ("train", "validate", "search", "evaluator", "trainer")):
        return
    if {"controller", "executor"} & doc.keys():
        raise ConfigError(
            [
                Problems(name).add(
                    "not-a-training-config",
                    "this is a config_automl.json (it has 'controller'/'executor'), not a training config",
                    "$",
                    "pass it with --automl next to the training config: clara-hydra convert "
                    "config_train.json --automl config_automl.json",
                )
            ]
        )
    if doc and all(not isinstance(v, (dict, list)) for v in doc.values()) and any(k.isupper() for k in doc):
        raise ConfigError(
            [
                Problems(name).add(
                    "not-a-training-config",
                    f"this looks like an environment.json (only variables: {sorted(doc)[:6]}), not a training config",
                    "$",
                    "pass it with --env next to the training config, or convert the MMAR folder",
                )
            ]
        )
