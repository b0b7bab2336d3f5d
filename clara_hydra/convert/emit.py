"""The emit pass: print the lowered tree as deterministic YAML, with the conversion report. Printing only.

Errors found by any pass stop here, before anything is printed, as one :class:`~clara_hydra.errors.ConfigError`
listing every problem of the file.
"""

from __future__ import annotations

from clara_hydra.convert.report import render_report
from clara_hydra.convert.search import discrete_size
from clara_hydra.convert.stages import Conversion, Lowered
from clara_hydra.convert.sweeps import sweep_expression
from clara_hydra.convert.yamlout import dump
from clara_hydra.errors import ConfigError, Level

__all__ = ["emit", "sweep_expression"]


def emit(lowered: Lowered) -> Conversion:
    """The printed files (``{relative path: text}``, the report included) and what the report says.

    Raises:
        ConfigError: some pass found an error; every error and warning is listed.
    """
    bound = lowered.wired.checked.bound
    resolved = bound.resolved
    parsed = resolved.parsed
    config = parsed.config
    diagnostics = list(lowered.diagnostics)
    errors = [d for d in diagnostics if d.level is Level.ERROR]
    if errors:
        warnings = [d for d in diagnostics if d.level is Level.WARNING]
        raise ConfigError(errors + warnings, f"{len(errors)} error(s) in {parsed.inputs.train.name}")
    files = {rel: dump(f.data, list(f.header), f.comments) for rel, f in lowered.files.items()}
    conv = Conversion(
        files,
        "",
        diagnostics,
        config,
        bound.plan,
        lowered.variables.required,
        discrete_size(bound.plan.dimensions),
        len(bound.plan.dimensions),
        list(resolved.unconverted),
    )
    conv.report = render_report(conv, list(lowered.groups), parsed.settings)
    conv.files["conversion_report.md"] = conv.report
    return conv
