"""The search space in Hydra's sweep grammar: one ``hydra.sweeper.params`` value per dimension."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clara_hydra.convert.yamlout import override_value
from clara_hydra.keywords import Sweep

if TYPE_CHECKING:
    from clara_hydra.convert.alternatives import Group
    from clara_hydra.convert.search import Dimension


def sweep_expression(dim: Dimension, group: Group | None) -> str:
    """The ``hydra.sweeper.params`` value of one dimension (a config group's option names when it has one)."""
    if group is not None:
        return f"{Sweep.CHOICE}({', '.join(name for name, _ in group.options)})"
    if dim.type == "float":
        lo, hi = dim.targets
        text = f"{Sweep.INTERVAL}({override_value(lo)}, {override_value(hi)})"
        return f"{Sweep.INT}({text})" if dim.integer else text
    return f"{Sweep.CHOICE}({', '.join(override_value(choice[0]) for choice in dim.targets)})"
