"""The conversion report: what was converted, rewritten, chosen, required, and what could not be carried over."""

from __future__ import annotations

from clara_hydra.convert.alternatives import Group
from clara_hydra.convert.model import AutomlSettings
from clara_hydra.convert.stages import Conversion
from clara_hydra.convert.sweeps import sweep_expression
from clara_hydra.errors import Level, shorten


def render_report(conv: Conversion, groups: list[Group], automl: AutomlSettings | None) -> str:
    """Markdown text, deterministic (sorted diagnostics, no timestamps)."""
    config, plan = conv.config, conv.plan
    by_dim = {id(g.dim): g for g in groups}
    name = config.file.replace("\\", "/").rsplit("/", 1)[-1]
    lines = [
        f"# Conversion report: {name}",
        "",
        f"- source: `{name}`, sha256 `{config.sha256}`, Clara {config.era.value}",
        f"- search space: {conv.dimensions} dimension(s); discrete part: {conv.points} point(s); "
        f"float dimensions: {sum(1 for d in plan.dimensions if d.type == 'float')}",
    ]
    if automl is not None:
        lines.append(
            f"- AutoML: max_rounds={automl.max_rounds} -> n_trials, stop_threshold={automl.stop_threshold}, "
            f"num_mmars_to_keep={automl.num_mmars_to_keep} -> keep_best"
        )
    lines += ["", "## Search space", ""]
    if plan.dimensions:
        lines += ["| sweeper param | Hydra sweep | Clara source |", "|---|---|---|"]
        for dim in plan.dimensions:
            group = by_dim.get(id(dim))
            key = group.name if group else dim.keys[0]
            lines.append(f"| `{key}` | `{sweep_expression(dim, group)}` | `{dim.json_path}` |")
        for g in groups:
            lines.append("")
            lines.append(
                f"Group `{g.name}` (default `{g.default}`): "
                + "; ".join(
                    f"`{o}` = " + ", ".join(f"{k}={shorten(repr(v))}" for k, v in vals.items()) for o, vals in g.options
                )
            )
    else:
        lines.append("No search: the config converts to one training run.")
    sections = [
        ("Required values", "required-value", None),
        ("Defaults chosen by policy", "default-chosen", None),
        ("Rewrites to today's MONAI/torch API", "rewrite", None),
        ("Errors", None, Level.ERROR),
        ("Warnings", None, Level.WARNING),
        ("Notes", None, Level.INFO),
    ]
    shown: set[int] = set()
    for title, rule, level in sections:
        rows = [d for d in conv.diagnostics if id(d) not in shown and (d.rule == rule if rule else d.level is level)]
        if not rows:
            continue
        lines += ["", f"## {title}", ""]
        for d in sorted(rows, key=lambda d: d.sort_key()):
            shown.add(id(d))
            text = f"- `{d.json_path}`: {d.message}" if d.json_path else f"- {d.message}"
            if d.fix:
                text += f" (fix: {d.fix})"
            lines.append(text)
    if conv.unconverted:
        lines += ["", "## Not carried over (no MONAI counterpart; `_target_: ???` in the tree)", ""]
        lines += [f"- `{u}`" for u in sorted(conv.unconverted)]
    text = "\n".join(lines) + "\n"
    # Messages quote the user's values; a lone surrogate among them could neither be written as UTF-8 nor printed.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
