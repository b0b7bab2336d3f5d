"""The typed output of each pass of the converter (:data:`clara_hydra.convert.pipeline.PASSES`).

Each stage holds the one before it and the diagnostics found so far, so every pass is a function of the previous
output alone: ``Inputs -> Parsed -> Resolved -> Bound -> Checked -> Wired -> Lowered -> Conversion``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clara_hydra.convert.alternatives import Group
from clara_hydra.convert.catalog import Resolution
from clara_hydra.convert.jsonload import Document
from clara_hydra.convert.model import AutomlSettings, ClaraConfig
from clara_hydra.convert.search import SearchPlan
from clara_hydra.errors import Diagnostic


@dataclass(frozen=True)
class Inputs:
    """What the user gave: the training config, its environment.json and config_automl.json, ``--set`` values."""

    train: Document
    env: Document | None = None
    automl: Document | None = None
    sets: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Parsed:
    """Parse: the typed model of the training config, the environment's variables, the AutoML settings."""

    inputs: Inputs
    config: ClaraConfig
    env_values: Mapping[str, Any]
    settings: AutomlSettings | None
    diagnostics: tuple[Diagnostic, ...]


@dataclass(frozen=True)
class Resolved:
    """Resolve: every component's class and arguments checked against its real signature (by JSON path)."""

    parsed: Parsed
    resolutions: Mapping[str, Resolution]
    requirements: frozenset[str]  # modules of the user's own components (Clara ``path``)
    unconverted: tuple[str, ...]  # ``json_path: class`` of components with no counterpart
    diagnostics: tuple[Diagnostic, ...]


@dataclass(frozen=True)
class Bound:
    """Bind: the search space (dimensions, searched keys and which component argument reads which key)."""

    resolved: Resolved
    plan: SearchPlan
    diagnostics: tuple[Diagnostic, ...]


@dataclass(frozen=True)
class Checked:
    """Check: the rules over the whole space (exactly one enabled alternative at every point)."""

    bound: Bound
    defaults: Mapping[str, Any]  # the value of every first-level, searched and environment name
    diagnostics: tuple[Diagnostic, ...]


@dataclass(frozen=True)
class Wired:
    """Wire: the arguments Clara 4.0 supplied implicitly (model to optimizer, ...), as emitted nodes.

    ``implicit`` maps a component's JSON path to ``{argument: node}``; empty for other eras.
    """

    checked: Checked
    implicit: Mapping[str, Mapping[str, Any]]
    diagnostics: tuple[Diagnostic, ...]


@dataclass(frozen=True)
class YamlFile:
    """One file of the Hydra tree before printing: its nodes, header lines and comments by dotted key."""

    data: Mapping[str, Any]
    header: tuple[str, ...]
    comments: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Variables:
    """Top-level variables beyond first-level parameters and searched keys, as the lowering used them."""

    values: Mapping[str, Any]  # name -> value ("???" when required)
    required: tuple[str, ...]
    job_dir: tuple[str, ...]  # names pointed into the job folder
    used: Mapping[str, str]  # name -> JSON path of its first use


@dataclass(frozen=True)
class Lowered:
    """Lower: the Hydra tree as typed files of nodes, the config groups and the variables it uses."""

    wired: Wired
    files: Mapping[str, YamlFile]  # relative path -> file
    groups: tuple[Group, ...]
    variables: Variables
    diagnostics: tuple[Diagnostic, ...]


@dataclass
class Conversion:
    """The result of converting one Clara config (emit: the printed files and the report)."""

    files: dict[str, str]
    report: str
    diagnostics: list[Diagnostic]
    config: ClaraConfig
    plan: SearchPlan
    required: tuple[str, ...] = ()
    points: int = 1
    dimensions: int = 0
    unconverted: list[str] = field(default_factory=list)
